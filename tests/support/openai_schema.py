"""What OpenAI's published OpenAPI description says an answer of its API is, as a check of ours.

The description is the part of OpenAI's that /api/v1 serves (tests/schemas/openai/: where it
comes from and how it was extracted). A JSON body is validated against the schema OpenAI's path,
method and status give it; an error body against OpenAI's ErrorResponse; each event of a stream
against the ResponseStreamEvent variant of its `type`.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SUBSET = Path(__file__).resolve().parents[1] / "schemas" / "openai" / "openapi-subset.json"
URI = "urn:openai-openapi"
SCHEMAS = "#/components/schemas/"


class OpenAIDescription:
    def __init__(self, path: Path = SUBSET) -> None:
        self.document = json.loads(path.read_text(encoding="utf-8"))
        resource = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(URI, resource)

    @property
    def version(self) -> str:
        return self.document["info"]["version"]

    def validator(self, name: str) -> Draft202012Validator:
        """A validator of the component schema `name`."""
        assert name in self.document["components"]["schemas"], f"OpenAI's description has no schema {name}"
        return Draft202012Validator({"$ref": URI + SCHEMAS + name}, registry=self.registry)

    def validate(self, name: str, document: Any) -> None:
        """Raise with every place `document` departs from the schema `name`, not just the first."""
        problems = sorted(self.validator(name).iter_errors(document), key=lambda e: list(e.absolute_path))
        assert not problems, f"not a valid {name}:\n" + "\n".join(_explained(e) for e in problems)

    def template(self, path: str) -> str:
        """OpenAI's path template a concrete path (under /v1) is an instance of."""
        for template in self.document["paths"]:
            pattern = "^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template)) + "$"
            if re.match(pattern, path):
                return template
        raise AssertionError(f"OpenAI's description has no path like {path}")

    def answer_schema(self, path: str, method: str, status: int, content_type: str) -> str | None:
        """The component schema OpenAI gives the answer; None when it gives the body no schema."""
        operation = self.document["paths"][self.template(path)][method.lower()]
        answer = operation["responses"].get(str(status))
        assert answer is not None, f"OpenAI's {method} {self.template(path)} does not answer {status}"
        if "$ref" in answer:
            answer = self.document["components"]["responses"][answer["$ref"].rpartition("/")[2]]
        content = answer.get("content")
        if content is None:
            return None
        assert content_type in content, f"OpenAI's {method} {path} {status} has no {content_type}"
        return content[content_type]["schema"]["$ref"].removeprefix(SCHEMAS)

    @cached_property
    def event_schemas(self) -> dict[str, str]:
        """Each streaming event's `type`, and the ResponseStreamEvent variant that describes it."""
        schemas = self.document["components"]["schemas"]
        found = {}
        for variant in schemas["ResponseStreamEvent"]["anyOf"]:
            name = variant["$ref"].removeprefix(SCHEMAS)
            for kind in schemas[name]["properties"]["type"]["enum"]:
                found[kind] = name
        return found

    def validate_event(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        assert kind in self.event_schemas, f"OpenAI streams no event of type {kind!r}"
        self.validate(self.event_schemas[kind], data)


def _explained(error: Any) -> str:
    where = "/".join(str(part) for part in error.absolute_path) or "(the whole)"
    return f"  at {where}: {error.message[:300]}"
