"""The model stand-in's structured outputs, verbosity and reasoning effort, through the real openai
client: a JSON document valid against the schema, streamed and not, reasoning tokens in usage, and
Azure's 400s for bad values."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jsonschema
import openai
import pytest

from standins import StandIns
from standins.formats import REASONING_TOKENS
from tests.support.standin_clients import azure_openai, collect, content_of

MESSAGES = [{"role": "user", "content": "Where is Lyon?"}]
PLACE = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "country": {"type": "string", "enum": ["FR", "DE"]},
        "population": {"type": "integer"},
        "area": {"type": ["number", "null"]},
        "capital": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "mayor": {"$ref": "#/$defs/Person"},
        "kind": {"const": "place"},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["city", "country", "population", "area", "capital", "tags", "mayor", "kind", "note"],
    "additionalProperties": False,
    "$defs": {
        "Person": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
            "additionalProperties": False,
        }
    },
}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "place", "schema": PLACE, "strict": True}}


def _both(standins: StandIns, **options: Any) -> tuple[Any, list[Any]]:
    async def scenario() -> tuple[Any, list[Any]]:
        async with azure_openai(standins) as client:
            completion = await client.chat.completions.create(model=standins.deployment, messages=MESSAGES, **options)
            stream = await client.chat.completions.create(
                model=standins.deployment,
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
                **options,
            )
            return completion, await collect(stream)

    return asyncio.run(scenario())


def test_a_json_schema_is_answered_with_a_document_valid_against_it(standins: StandIns) -> None:
    completion, chunks = _both(standins, response_format=JSON_SCHEMA)
    document = json.loads(completion.choices[0].message.content)
    jsonschema.validate(document, PLACE)
    assert document["country"] == "FR" and document["kind"] == "place" and len(document["tags"]) == 2
    assert document["city"] == "Echo #0: Where is Lyon?"
    assert json.loads(content_of(chunks)) == document
    assert standins.model.journal.entries()[-1]["body"]["response_format"] == JSON_SCHEMA


def test_json_object_is_answered_with_a_json_object_and_text_as_before(standins: StandIns) -> None:
    completion, chunks = _both(standins, response_format={"type": "json_object"})
    assert json.loads(completion.choices[0].message.content) == {"echo": "Echo #0: Where is Lyon?"}
    assert json.loads(content_of(chunks)) == {"echo": "Echo #0: Where is Lyon?"}
    plain, _ = _both(standins, response_format={"type": "text"}, verbosity="low")
    assert plain.choices[0].message.content == "Echo #0: Where is Lyon?"


@pytest.mark.parametrize("effort", ["minimal", "low", "high"])
def test_a_reasoning_effort_spends_reasoning_tokens(standins: StandIns, effort: str) -> None:
    completion, chunks = _both(standins, reasoning_effort=effort)
    plain, _ = _both(standins)
    spent = REASONING_TOKENS[effort]
    assert spent > 0
    assert completion.usage.completion_tokens_details.reasoning_tokens == spent
    assert completion.usage.completion_tokens == plain.usage.completion_tokens + spent
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens == spent
    assert plain.usage.completion_tokens_details.reasoning_tokens == 0


@pytest.mark.parametrize(
    ("options", "param", "code"),
    [
        ({"reasoning_effort": "huge"}, "reasoning_effort", "invalid_value"),
        ({"verbosity": "terse"}, "verbosity", "invalid_value"),
        ({"response_format": {"type": "xml"}}, "response_format.type", "invalid_value"),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema", "missing_required_parameter"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "a b", "schema": {}}}},
            "response_format.json_schema.name",
            "invalid_value",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": []}}},
            "response_format.json_schema.schema",
            "invalid_type",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}, "strict": True}}},
            "response_format",
            "invalid_json_schema",
        ),
    ],
)
def test_bad_values_are_azures_400(standins: StandIns, options: dict[str, Any], param: str, code: str) -> None:
    async def scenario() -> None:
        async with azure_openai(standins) as client:
            await client.chat.completions.create(model=standins.deployment, messages=MESSAGES, **options)

    with pytest.raises(openai.BadRequestError) as caught:
        asyncio.run(scenario())
    assert (caught.value.status_code, caught.value.param, caught.value.code) == (400, param, code)
