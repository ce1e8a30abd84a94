"""Every property of OpenAI's CreateResponse is served or refused, never accepted and dropped: the table
in docs/openai-compatible.md lists each, and this holds it to OpenAI's description and to the parser."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chat.web.openai.errors import InvalidParameter
from chat.web.openai.requests.responses import ResponseBody, parse_response_request
from tests.fakes.openai_door import MODEL
from tests.support.openai_schema import SUBSET

DOC = Path(__file__).resolve().parents[1] / "docs" / "openai-compatible.md"
SECTION = "## Every property of a create"
# For each property refused unless it asks for nothing: a value that asks for something.
ASKING = {
    "max_tool_calls": 2,
    "moderation": {"model": "omni-moderation-latest"},
    "prompt": {"id": "pmpt_1"},
    "prompt_cache_options": {"ttl": "30m"},
    "prompt_cache_retention": "24h",
    "service_tier": "flex",
    "stream_options": {"include_usage": True},
    "top_logprobs": 3,
}


def create_response_properties() -> set[str]:
    description = json.loads(SUBSET.read_text(encoding="utf-8"))
    schemas = description["components"]["schemas"]

    def properties(schema: dict) -> set[str]:
        if "$ref" in schema:
            return properties(schemas[schema["$ref"].rpartition("/")[2]])
        found = set(schema.get("properties", {}))
        for part in schema.get("allOf", []):
            found |= properties(part)
        return found

    body = description["paths"]["/responses"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return properties(body)


def documented() -> dict[str, str]:
    """The table's rows: each property and what it says of it (`served` or `refused ...`)."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ", len(SECTION))]
    rows = re.findall(r"^\| `([a-z_]+)` \| ([^|]+?) \|", section, flags=re.MULTILINE)
    return dict(rows)


def test_the_table_lists_every_property_of_openais_create_response_once():
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    names = re.findall(r"^\| `([a-z_]+)` \|", section[: section.index("\n## ", len(SECTION))], flags=re.MULTILINE)
    assert len(names) == len(set(names))
    assert set(names) == create_response_properties()


def test_what_the_table_calls_served_the_parser_honours_and_what_it_calls_refused_it_refuses():
    fields = set(ResponseBody.model_fields)
    for name, status in documented().items():
        if status.startswith("served"):
            assert name in fields and name not in ResponseBody.refused, name
        else:
            assert status.startswith("refused"), (name, status)
            assert name in ResponseBody.refused, name


@pytest.mark.parametrize("name", sorted(ASKING))
def test_a_refused_property_asking_for_something_is_a_400_naming_it(name):
    if not documented()[name].startswith("refused"):
        pytest.fail(f"{name} is served now: move it out of ASKING and test what it does")
    body = {"model": MODEL, "input": "hi", name: ASKING[name]}
    with pytest.raises(InvalidParameter) as raised:
        parse_response_request(json.dumps(body).encode())
    assert raised.value.param is not None and raised.value.param.split(".")[0] == name
    assert raised.value.code == "unsupported_parameter"


def test_every_refused_property_has_a_value_that_asks_for_something_here():
    refused = {name for name, status in documented().items() if status.startswith("refused")}
    assert refused == set(ASKING)
