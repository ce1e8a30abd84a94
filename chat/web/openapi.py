"""The OpenAPI 3.1 document of every route, both front doors, served at GET /api/openapi.json.

Nothing in it is written beside the code it describes:

- paths, methods, path parameters and which routes are anonymous come from the route table
  (routes.py), and each method carries its operation (operations.py): its summary, answers and
  errors, its body and its query string, which are the parsers' and handlers' own models;
- the OpenAI-compatible door's answers are the openai SDK's own types (Response, Conversation,
  ConversationItemList, ResponseStreamEvent, ...): the shapes the official SDKs read, which is that
  door's contract, and which objects.py is held to field by field (tests/test_openai_wire.py).
  They describe a little more than this server sends (item kinds, tools and events it never makes)
  and, as the SDK does, let an object carry fields they do not declare;
- errors are each door's error shape, per status an operation can answer.

A streamed answer is described a line (application/jsonl) or an event's `data` (text/event-stream)
at a time: OpenAPI 3.1 has no keyword for a sequence of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode

from chat.engine.ids import MAX_IDEMPOTENCY_KEY_CHARS
from chat.web import answers, toolkit
from chat.web.openai import handlers as openai
from chat.web.operations import PATH_PARAMETERS, Answer, OpenAIError, Operation
from chat.web.routing import Route

JSON = toolkit.JSON
OPENAPI_VERSION = "3.1.0"
VERSION = "0.1.0"  # the project's, in pyproject.toml
REF = "#/components/schemas/{model}"

ERRORS: Mapping[str, str] = {
    "400": "Bad input: a malformed or unsupported body, query parameter, header or ID (on the OpenAI door, "
    "`param` names it), or a prompt the model's content filter refused (`content_filter`).",
    "401": "CHAT_TRUST_CLIENT_PRINCIPAL=true and no valid signed-in user in `x-ms-client-principal`.",
    "404": "No such conversation (another owner's too), response, item or model.",
    "405": "A method this path does not serve (answered the same on every path): `Allow` names those it does.",
    "409": "Too many turns at once on the conversation (`conversation_busy`): retry.",
    "413": "Too large: a message or input item over CHAT_MAX_MESSAGE_CHARS, a body over 16 MiB, or too many "
    "messages or JSON values in it.",
    "415": "A body not sent as `application/json` (UTF-8).",
    "422": "An Idempotency-Key sent again with another request.",
    "429": "The model's rate limit (`rate_limited`; `rate_limit_exceeded` on the OpenAI door) or the owner's "
    "daily token quota (`quota_exceeded`): retry after `Retry-After` seconds.",
    "5XX": "The model failed (502), is unavailable (503) or timed out (504); storage is unavailable (503); a "
    "setting is missing or contradictory (503 `configuration_error`); or an unexpected failure (500).",
}
ERROR_HEADERS: Mapping[str, tuple[str, ...]] = {"405": ("Allow",), "409": ("Retry-After",), "429": ("Retry-After",)}
HEADERS: Mapping[str, dict[str, Any]] = {
    "Retry-After": {"description": "Seconds to wait before a retry.", "schema": {"type": "integer", "minimum": 1}},
    "Allow": {"description": "The methods this path serves.", "schema": {"type": "string"}},
    "Idempotent-Replayed": {
        "description": "`true`: this is the stored answer of the first request with this Idempotency-Key.",
        "schema": {"type": "string", "const": "true"},
    },
}
REQUIRED_HEADERS = ("Retry-After", "Allow")


@dataclass(frozen=True)
class Door:
    name: str
    error: type[BaseModel]  # its error body


CHAT_DOOR = Door("Chat", answers.ErrorBody)
OPENAI_DOOR = Door("OpenAI", OpenAIError)
# Each route names its door's error shape; the document follows it.
DOORS: Mapping[toolkit.ErrorBody, Door] = {toolkit.error_document: CHAT_DOOR, openai.error_body: OPENAI_DOOR}
TAGS = {
    CHAT_DOOR: "AI Chat Protocol, history and health",
    OPENAI_DOOR: "OpenAI-compatible: Responses, Conversations, Models (/api/v1)",
}

DESCRIPTION = """\
A chat backend on Azure Functions: the Microsoft AI Chat Protocol routes with their history, and
OpenAI's Responses and Conversations APIs under `/api/v1`, on the same conversations.

Authentication: in Azure, send a function key in the `x-functions-key` header (or the `code` query
parameter), unless the app runs with `CHAT_AUTH_LEVEL=anonymous`; locally no key is needed.
`/api/health` and `/api/openapi.json` are always anonymous. Behind Static Web Apps or App Service
authentication with `CHAT_TRUST_CLIENT_PRINCIPAL=true`, the platform passes the signed-in user in
`x-ms-client-principal`, each user owns their own conversations, and a request without one is a 401.

Every route also answers `OPTIONS` (a CORS preflight, for the origins in `CHAT_ALLOWED_ORIGINS`;
403 for another). Streams are described a line (`application/jsonl`) or an event's `data`
(`text/event-stream`) at a time.
"""

SECURITY_SCHEMES = {
    "functionKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-functions-key",
        "description": "A function key of the app (Azure; not needed locally or with CHAT_AUTH_LEVEL=anonymous).",
    },
    "functionKeyQuery": {
        "type": "apiKey",
        "in": "query",
        "name": "code",
        "description": "The function key in the query string instead of the header.",
    },
    "clientPrincipal": {
        "type": "apiKey",
        "in": "header",
        "name": "x-ms-client-principal",
        "description": "The signed-in user, set by Static Web Apps or App Service authentication, never by a "
        "client: honoured only with CHAT_TRUST_CLIENT_PRINCIPAL=true, and then required.",
    },
}


def document_bytes(routes: Sequence[Route]) -> bytes:
    return json.dumps(document(routes), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def document(routes: Sequence[Route]) -> dict[str, Any]:
    """The OpenAPI document of `routes`, every method of each."""
    schemas = _Schemas()
    paths: dict[str, Any] = {}
    responses: dict[str, Any] = {}
    for route in routes:
        door = DOORS[route.error_body]
        item: dict[str, Any] = {}
        parameters = _path_parameters(route)
        if parameters:
            item["parameters"] = parameters
        for name, method in route.methods.items():
            item[name.lower()] = _operation(method.operation, name, route, door, schemas, responses)
        paths["/api/" + route.path] = item
    return _pruned(
        {
            "openapi": OPENAPI_VERSION,
            "info": {
                "title": "Keyless chat history on Azure Functions",
                "version": VERSION,
                "description": DESCRIPTION,
            },
            "tags": [{"name": tag} for tag in TAGS.values()],
            "security": [{name: []} for name in SECURITY_SCHEMES],
            "paths": paths,
            "components": {
                "schemas": schemas.components(),
                "responses": responses,
                "parameters": {"IdempotencyKey": _idempotency_key()},
                "securitySchemes": SECURITY_SCHEMES,
            },
        }
    )


def _operation(
    operation: Operation, method: str, route: Route, door: Door, schemas: _Schemas, responses: dict[str, Any]
) -> dict[str, Any]:
    head = method == "HEAD"
    result: dict[str, Any] = {
        "operationId": operation.id + ("_head" if head else ""),
        "summary": operation.summary,
        "tags": [TAGS[door]],
    }
    parameters = _query_parameters(operation.query) if operation.query else []
    if operation.idempotent:
        parameters.append({"$ref": "#/components/parameters/IdempotencyKey"})
    if parameters:
        result["parameters"] = parameters
    if operation.body is not None:
        result["requestBody"] = {
            "required": operation.body_required,
            "content": {JSON: {"schema": schemas.of(operation.body)}},
        }
    answered: dict[str, Any] = {}
    for status, answer in operation.answers.items():
        answered[status] = _answer(answer, schemas, with_content=not head)
    for status in operation.errors:
        if head:
            answered[status] = {"description": ERRORS[status], **_headers(ERROR_HEADERS.get(status, ()))}
            continue
        name = f"{door.name}Error{status}"
        if name not in responses:
            responses[name] = {
                "description": ERRORS[status],
                "content": {JSON: {"schema": schemas.of(door.error)}},
                **_headers(ERROR_HEADERS.get(status, ())),
            }
        answered[status] = {"$ref": f"#/components/responses/{name}"}
    result["responses"] = answered
    if route.anonymous:
        result["security"] = []
    return result


def _answer(answer: Answer, schemas: _Schemas, *, with_content: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"description": answer.description, **_headers(answer.headers)}
    if with_content and answer.content:
        result["content"] = {
            media_type: {"schema": schemas.of(kind, "serialization")} for media_type, kind in answer.content.items()
        }
    if answer.links:
        result["links"] = {
            name: {"operationId": operation_id, "parameters": dict(parameters)}
            for name, (operation_id, parameters) in answer.links.items()
        }
    return result


def _headers(names: Sequence[str]) -> dict[str, Any]:
    if not names:
        return {}
    return {"headers": {name: {**HEADERS[name], "required": name in REQUIRED_HEADERS} for name in names}}


def _path_parameters(route: Route) -> list[dict[str, Any]]:
    parameters = []
    for before, segment in zip(route.segments, route.segments[1:], strict=False):
        if segment.startswith("{"):
            name = segment[1:-1]
            description, kind = PATH_PARAMETERS[(before, name)]
            schema = TypeAdapter(kind).json_schema()
            parameters.append(
                {"name": name, "in": "path", "required": True, "description": description, "schema": schema}
            )
    return parameters


def _query_parameters(query: type[BaseModel]) -> list[dict[str, Any]]:
    schema = query.model_json_schema()
    parameters = []
    for name, prop in schema["properties"].items():
        prop = {key: value for key, value in prop.items() if key not in ("title", "description")}
        if prop.get("default", ...) is None:  # left out, not null
            del prop["default"]
        parameter = {"name": name, "in": "query", "description": query.model_fields[name].description, "schema": prop}
        if name in schema.get("required", ()):
            parameter["required"] = True
        parameters.append(parameter)
    return parameters


def _idempotency_key() -> dict[str, Any]:
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "description": "A retried request with the same key and caller gets the first answer and stores nothing "
        "more; the same key with another request is a 422.",
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY_CHARS, "pattern": "^[ -~]+$"},
    }


class _Generator(GenerateJsonSchema):
    def normalize_name(self, name: str) -> str:
        # The request models are private to their module (`_ResponseBody`); their schemas need not be.
        return super().normalize_name(name).lstrip("_")


class _Schemas:
    """The JSON Schemas of the document's types, generated together, so that a type the bodies and the
    answers share (and a name two types share) is settled once across the whole document."""

    def __init__(self) -> None:
        self._pending: list[tuple[dict[str, Any], JsonSchemaMode, TypeAdapter[Any]]] = []

    def of(self, kind: Any, mode: JsonSchemaMode = "validation") -> dict[str, Any]:
        """The schema of `kind` (a JSON Schema is its own), filled in by components()."""
        if isinstance(kind, dict):
            return kind
        schema: dict[str, Any] = {}
        self._pending.append((schema, mode, TypeAdapter(kind)))
        return schema

    def components(self) -> dict[str, Any]:
        inputs = [(index, mode, adapter) for index, (_, mode, adapter) in enumerate(self._pending)]
        generated, definitions = TypeAdapter.json_schemas(inputs, ref_template=REF, schema_generator=_Generator)
        for index, (schema, mode, _) in enumerate(self._pending):
            schema.update(generated[(index, mode)])
        return dict(sorted(definitions.get("$defs", {}).items()))


def _pruned(document: dict[str, Any]) -> dict[str, Any]:
    """The document without the component schemas nothing refers to (generating schemas together
    keeps those of union members left out of a schema, such as the unsupported kinds of openai/requests)."""
    schemas = document["components"]["schemas"]
    used: set[str] = set()
    pending = [document["paths"], document["components"]["responses"]]
    while pending:
        for ref in _refs(pending.pop()):
            name = ref.rpartition("/")[2]
            if ref.startswith("#/components/schemas/") and name not in used:
                used.add(name)
                pending.append(schemas[name])
    document["components"]["schemas"] = {name: schema for name, schema in schemas.items() if name in used}
    return document


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)
