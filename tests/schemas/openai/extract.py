"""Extract from OpenAI's OpenAPI description (openapi.json of github.com/openai/openai-openapi) the
part the OpenAI-compatible door is held to: the parameters and answers of the paths it serves, and
every component schema they reach, without descriptions, titles, examples or x- extensions.

    python tests/schemas/openai/extract.py OPENAPI_JSON COMMIT > tests/schemas/openai/openapi-subset.json

It reads a local file only; the tests read its output and never the network.
"""

from __future__ import annotations

import json
import sys
from typing import Any

# OpenAI's paths that /api/v1 serves, and the methods of each.
PATHS = {
    "/responses": ["post"],
    "/responses/{response_id}": ["get", "delete"],
    "/responses/{response_id}/input_items": ["get"],
    "/responses/{response_id}/cancel": ["post"],
    "/conversations": ["post"],
    "/conversations/{conversation_id}": ["get", "post", "delete"],
    "/conversations/{conversation_id}/items": ["post", "get"],
    "/conversations/{conversation_id}/items/{item_id}": ["get", "delete"],
    "/models": ["get"],
    "/models/{model}": ["get"],
}
# The error body OpenAI answers every failure with; its paths name it only for a 429.
EXTRA_SCHEMAS = ["ErrorResponse"]
ANNOTATIONS = {"description", "title", "example", "examples", "$comment"}
# Keywords whose value maps names (properties, not keywords) to schemas.
NAMED = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}


def stripped(schema: Any) -> Any:
    """A schema without its annotations; a property named like an annotation stays."""
    if isinstance(schema, list):
        return [stripped(value) for value in schema]
    if not isinstance(schema, dict):
        return schema
    result = {}
    for key, value in schema.items():
        if key in ANNOTATIONS or key.startswith("x-"):
            continue
        if key in NAMED:
            result[key] = {name: stripped(sub) for name, sub in value.items()}
        else:
            result[key] = stripped(value)
    return result


def schema_refs(node: Any) -> list[str]:
    """The names of the component schemas `node` refers to."""
    prefix = "#/components/schemas/"
    return [ref.removeprefix(prefix) for ref in refs(node) if ref.startswith(prefix)]


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for key, value in node.items() if key != "$ref" for ref in refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in refs(value)]
    return []


def extract(document: dict[str, Any], commit: str) -> dict[str, Any]:
    components = document["components"]
    paths: dict[str, Any] = {}
    responses: dict[str, Any] = {}
    for path, methods in PATHS.items():
        paths[path] = {}
        for method in methods:
            operation = document["paths"][path][method]
            answers = operation["responses"]
            paths[path][method] = {"parameters": stripped(operation.get("parameters", [])), "responses": answers}
            for answer in answers.values():
                if "$ref" in answer:
                    name = answer["$ref"].rpartition("/")[2]
                    responses[name] = components["responses"][name]
    schemas: dict[str, Any] = {}
    pending = schema_refs([paths, responses]) + EXTRA_SCHEMAS
    while pending:
        name = pending.pop()
        if name not in schemas:
            schemas[name] = stripped(components["schemas"][name])
            pending += schema_refs(schemas[name])
    return {
        "openapi": document["openapi"],
        "info": {
            "title": document["info"]["title"] + " (the part /api/v1 serves)",
            "version": document["info"]["version"],
        },
        "x-source": {"repository": "github.com/openai/openai-openapi", "path": "openapi.json", "commit": commit},
        "paths": paths,
        "components": {"schemas": dict(sorted(schemas.items())), "responses": responses},
    }


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as source:
        subset = extract(json.load(source), sys.argv[2])
    json.dump(subset, sys.stdout, indent=1, sort_keys=False, ensure_ascii=False)
    sys.stdout.write("\n")
