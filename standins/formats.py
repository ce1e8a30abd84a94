"""The model stand-in's structured outputs, verbosity and reasoning effort.

``response_format`` ``{"type": "json_schema", "json_schema": {"name", "schema", "strict"?,
"description"?}}`` is answered with a small JSON document valid against the schema (every property,
the first of an enum, a const, one item of an array, ``$ref`` to ``$defs`` followed), and
``{"type": "json_object"}`` with ``{"echo": <the usual echo>}``; ``text`` changes nothing.
``reasoning_effort`` makes the model spend REASONING_TOKENS[effort] reasoning tokens, counted in
``completion_tokens`` and reported in ``completion_tokens_details.reasoning_tokens``. Bad values
are the 400s Azure OpenAI answers, and so is a strict schema whose top level does not say
``"additionalProperties": false``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .protocol import invalid_request

EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
VERBOSITIES = ("low", "medium", "high")
FORMATS = ("text", "json_object", "json_schema")
REASONING_TOKENS = {"none": 0, "minimal": 4, "low": 8, "medium": 16, "high": 32, "xhigh": 64, "max": 128}
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_MAX_DEPTH = 16


def _choices(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values[:-1]) + f", and '{values[-1]}'"


def validate(body: dict[str, Any]) -> None:
    """A 400 for a `response_format`, `reasoning_effort` or `verbosity` the API would refuse."""
    for name, allowed in (("reasoning_effort", EFFORTS), ("verbosity", VERBOSITIES)):
        value = body.get(name)
        if value is not None and value not in allowed:
            raise invalid_request(
                f"Invalid value: '{value}'. Supported values are: {_choices(allowed)}.", name, "invalid_value"
            )
    shape = body.get("response_format")
    if shape is None:
        return
    if not isinstance(shape, dict):
        raise invalid_request(
            "Invalid type for 'response_format': expected an object.", "response_format", "invalid_type"
        )
    if shape.get("type") not in FORMATS:
        raise invalid_request(
            f"Invalid value: '{shape.get('type')}'. Supported values are: {_choices(FORMATS)}.",
            "response_format.type",
            "invalid_value",
        )
    if shape["type"] != "json_schema":
        return
    config = shape.get("json_schema")
    if not isinstance(config, dict):
        raise invalid_request(
            "Missing required parameter: 'response_format.json_schema'.",
            "response_format.json_schema",
            "missing_required_parameter",
        )
    named = config.get("name")
    if not isinstance(named, str) or not _NAME.fullmatch(named):
        raise invalid_request(
            "Invalid 'response_format.json_schema.name': string does not match pattern. "
            "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
            "response_format.json_schema.name",
            "invalid_value",
        )
    schema = config.get("schema", {})
    if not isinstance(schema, dict):
        raise invalid_request(
            "Invalid type for 'response_format.json_schema.schema': expected an object.",
            "response_format.json_schema.schema",
            "invalid_type",
        )
    if config.get("strict") is True and schema.get("additionalProperties") is not False:
        # Strict mode's first rule, checked here at the top level only.
        raise invalid_request(
            f"Invalid schema for response_format '{named}': In context=(), 'additionalProperties' is required "
            "to be supplied and to be false.",
            "response_format",
            "invalid_json_schema",
        )


def formatted(body: dict[str, Any], text: str) -> str:
    """The answer's content in the asked format: `text` as it is, or a JSON document holding it."""
    shape = body.get("response_format") or {}
    if shape.get("type") == "json_object":
        return json.dumps({"echo": text})
    if shape.get("type") == "json_schema":
        schema = shape["json_schema"].get("schema") or {}
        return json.dumps(instance(schema, schema, text))
    return text


def reasoning_tokens(body: dict[str, Any]) -> int:
    effort = body.get("reasoning_effort")
    return REASONING_TOKENS[effort] if effort is not None else 0


def instance(schema: Any, root: dict[str, Any], text: str, depth: int = 0) -> Any:
    """A small value valid against `schema`: strings are `text`."""
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None
    if "$ref" in schema:
        return instance(_resolve(root, schema["$ref"]), root, text, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for union in ("anyOf", "oneOf", "allOf"):
        if schema.get(union):
            return instance(schema[union][0], root, text, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: instance(sub, root, text, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        return [instance(schema.get("items", {}), root, text, depth + 1) for _ in range(count)]
    return {"string": text, "integer": 1, "number": 1.5, "boolean": True}.get(kind)


def _resolve(root: dict[str, Any], ref: str) -> Any:
    node: Any = root
    for part in ref.removeprefix("#/").split("/") if ref != "#" else ():
        node = node.get(part) if isinstance(node, dict) else None
    return node
