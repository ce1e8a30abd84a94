"""The OpenAPI 3.1 document of every route, both front doors, served at GET /api/openapi.json.

Nothing in it is written beside the code it describes:

- paths, methods and path parameters come from the route table (routes.py); each method's
  operation is in OPERATIONS, by route name, and a method without one fails the build;
- request bodies are the JSON Schemas of the models the parsers validate with (chat_protocol.py,
  openai/requests.py); query parameters come from small models over the parsers' own limits;
- the chat routes' answers are the models their handlers build them with (answers.py);
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
from dataclasses import dataclass, field
from typing import Any, Literal

from openai.types import Model
from openai.types.conversations import (
    Conversation,
    ConversationDeletedResource,
    ConversationItem,
    ConversationItemList,
)
from openai.types.responses import Response as OpenAIResponse
from openai.types.responses import ResponseItemList, ResponseStreamEvent
from openai.types.shared import ErrorObject
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, SkipJsonSchema

from chat.engine.ids import MAX_IDEMPOTENCY_KEY_CHARS
from chat.web import answers, toolkit
from chat.web.chat import JSON_LINES
from chat.web.chat_protocol import ChatRequestBody
from chat.web.openai import handlers as openai
from chat.web.openai import requests
from chat.web.toolkit import Route

JSON = "application/json"
EVENT_STREAM = openai.EVENT_STREAM
OPENAPI_VERSION = "3.1.0"
VERSION = "0.1.0"  # the project's, in pyproject.toml
REF = "#/components/schemas/{model}"

# -- the OpenAI door's objects that the SDK has no type for ------------------------------------------


class _OpenAIObject(BaseModel):
    model_config = ConfigDict(extra="allow")  # as the SDK's own types


class OpenAIError(_OpenAIObject):
    error: ErrorObject


class ResponseDeleted(_OpenAIObject):
    id: str
    object: Literal["response.deleted"]
    deleted: bool


class ModelList(_OpenAIObject):
    object: Literal["list"]
    data: list[Model]


# -- query strings, over the parsers' limits ---------------------------------------------------------
# A parameter left out has its default, or none (SkipJsonSchema[None]: a query string has no null).


class _Page(BaseModel):
    limit: int = Field(toolkit.DEFAULT_PAGE_SIZE, ge=1, le=toolkit.MAX_PAGE_SIZE, description="The page size.")
    cursor: str | SkipJsonSchema[None] = Field(None, description="The opaque `next` of the page before.")


class _Include(BaseModel):
    include: requests.Includes | SkipJsonSchema[None] = Field(
        None, description="Data to add to items: accepted, and this server never has any of it."
    )


class _ItemPage(_Include):
    after: requests.ObjectId | SkipJsonSchema[None] = Field(None, description="The ID of the item the page follows.")
    limit: int = Field(requests.DEFAULT_PAGE_SIZE, ge=1, le=requests.MAX_PAGE_SIZE, description="The page size.")
    order: Literal["asc", "desc"] = Field("desc", description="Oldest (`asc`) or newest (`desc`) first.")


class _Retrieve(_Include):
    stream: Literal[False] = Field(False, description="A stored response is read whole: only `false`.")
    include_obfuscation: bool | SkipJsonSchema[None] = Field(
        None, description="Accepted; nothing is streamed, so nothing is padded."
    )


# -- operations --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    description: str
    # Media type: the type of its body (of each line or event, for a stream), or a JSON Schema.
    content: Mapping[str, Any] = field(default_factory=dict)
    headers: tuple[str, ...] = ()
    # OpenAPI links: what a client (or a fuzzer's stateful phase) can call next with what this answers,
    # by link name: the operation's id and its parameters as runtime expressions.
    links: Mapping[str, tuple[str, Mapping[str, str]]] = field(default_factory=dict)


def _links(of: str, *operation_ids: str, **parameters: str) -> dict[str, tuple[str, Mapping[str, str]]]:
    """Links to operations that each take the ID `of` gives (a runtime expression) as `id`, and `parameters`."""
    return {operation_id: (operation_id, {"id": of, **parameters}) for operation_id in operation_ids}


@dataclass(frozen=True)
class Operation:
    id: str
    summary: str
    answers: Mapping[str, Answer]  # by status, the operation's own answers
    errors: tuple[str, ...]  # the error statuses it can answer, in its door's error shape
    body: type[BaseModel] | None = None
    body_required: bool = True  # else an empty body reads as {}
    query: type[BaseModel] | None = None
    idempotent: bool = False  # takes an Idempotency-Key
    anonymous: bool = False  # no function key, whatever CHAT_AUTH_LEVEL says


READ = ("400", "401", "404", "405", "5XX")
LIST = ("400", "401", "405", "5XX")
WRITE = ("400", "401", "404", "405", "409", "413", "415", "5XX")
TURN = ("400", "401", "404", "405", "409", "413", "415", "422", "429", "5XX")
REPLAYED = ("Idempotent-Replayed",)

OPERATIONS: Mapping[str, Mapping[str, Operation]] = {
    "chat": {
        "POST": Operation(
            "chat",
            "One turn, answered as JSON once it is stored",
            {
                "200": Answer(
                    "The answer.",
                    {JSON: answers.ChatAnswer},
                    REPLAYED,
                    _links("$response.body#/sessionState", "list_messages", "delete_conversation"),
                )
            },
            TURN,
            body=ChatRequestBody,
            idempotent=True,
        )
    },
    "chat_stream": {
        "POST": Operation(
            "chat_stream",
            "One turn, the answer streamed as JSON lines",
            {
                "200": Answer(
                    "The answer as JSON lines, one object a line (this schema is a line's), flushed as the model "
                    "writes it: the role and conversation first, then pieces of text, then the context once the "
                    "turn is stored; or, if it failed after it started, an error line, and nothing is stored.",
                    {JSON_LINES: answers.StreamLine},
                    REPLAYED,
                )
            },
            TURN,
            body=ChatRequestBody,
            idempotent=True,
        )
    },
    "conversations": {
        "GET": Operation(
            "list_conversations",
            "The caller's conversations, most recently active first",
            {"200": Answer("A page of conversations.", {JSON: answers.ConversationList})},
            LIST,
            query=_Page,
        )
    },
    "conversation_messages": {
        "GET": Operation(
            "list_messages",
            "A conversation's messages, chronological, paged from the newest",
            {"200": Answer("A page of messages.", {JSON: answers.MessageList})},
            READ,
            query=_Page,
        )
    },
    "conversation": {
        "DELETE": Operation(
            "delete_conversation",
            "Delete a conversation and all its messages",
            {"204": Answer("Deleted, or there was none of that ID: a delete is idempotent.")},
            LIST,
        )
    },
    "health": {
        "GET": Operation(
            "health",
            "Liveness, configuration, and whether storage and the model endpoint answer",
            {
                "200": Answer("Healthy.", {JSON: answers.Health}),
                "503": Answer(
                    "Storage or the model does not answer (`degraded`), or a setting is wrong (`misconfigured`).",
                    {JSON: answers.Health | answers.Misconfigured},
                ),
            },
            ("405", "5XX"),
            anonymous=True,
        )
    },
    "openapi": {
        "GET": Operation(
            "openapi",
            "This document",
            {"200": Answer("The OpenAPI 3.1 document of every route.", {JSON: {"type": "object"}})},
            ("405", "5XX"),
            anonymous=True,
        )
    },
    "v1_responses": {
        "POST": Operation(
            "create_response",
            "One turn: a response to new input, in a conversation or after a previous response",
            {
                "200": Answer(
                    "The response; with `stream: true`, server-sent events instead: each `event:` the `type` of "
                    "its `data`, an event object of this schema, numbered by `sequence_number`, ending with "
                    "response.completed, response.incomplete or response.failed.",
                    {JSON: OpenAIResponse, EVENT_STREAM: ResponseStreamEvent},
                    REPLAYED,
                    _links("$response.body#/id", "get_response", "list_input_items", "delete_response"),
                )
            },
            TURN,
            body=requests.ResponseBody,
            idempotent=True,
        )
    },
    "v1_response": {
        "GET": Operation(
            "get_response",
            "A stored response",
            {"200": Answer("The response, as it was answered.", {JSON: OpenAIResponse})},
            READ,
            query=_Retrieve,
        ),
        "DELETE": Operation(
            "delete_response",
            "Forget a stored response; its turn stays in its conversation",
            {"200": Answer("Deleted.", {JSON: ResponseDeleted})},
            READ,
        ),
    },
    "v1_response_input_items": {
        "GET": Operation(
            "list_input_items",
            "A stored response's input items",
            {"200": Answer("A page of items.", {JSON: ResponseItemList})},
            READ,
            query=_ItemPage,
        )
    },
    "v1_conversations": {
        "POST": Operation(
            "create_v1_conversation",
            f"A new conversation, with at most {requests.MAX_CONVERSATION_ITEMS} items and metadata",
            {
                "200": Answer(
                    "The conversation.",
                    {JSON: Conversation},
                    links=_links(
                        "$response.body#/id",
                        "get_v1_conversation",
                        "update_v1_conversation",
                        "delete_v1_conversation",
                        "create_items",
                        "list_items",
                    ),
                )
            },
            ("400", "401", "405", "413", "415", "5XX"),
            body=requests.ConversationCreateBody,
            body_required=False,
        )
    },
    "v1_conversation": {
        "GET": Operation(
            "get_v1_conversation",
            "A conversation",
            {"200": Answer("The conversation.", {JSON: Conversation})},
            READ,
        ),
        "POST": Operation(
            "update_v1_conversation",
            "Replace a conversation's metadata",
            {"200": Answer("The conversation.", {JSON: Conversation})},
            WRITE,
            body=requests.ConversationUpdateBody,
        ),
        "DELETE": Operation(
            "delete_v1_conversation",
            "Delete a conversation and all its items",
            {"200": Answer("Deleted.", {JSON: ConversationDeletedResource})},
            READ,
        ),
    },
    "v1_conversation_items": {
        "POST": Operation(
            "create_items",
            f"Add at most {requests.MAX_CONVERSATION_ITEMS} items to a conversation; the model is not asked",
            {
                "200": Answer(
                    "The items added.",
                    {JSON: ConversationItemList},
                    links=_links("$request.path.id", "get_item", "delete_item", item_id="$response.body#/data/0/id"),
                )
            },
            WRITE,
            body=requests.ItemsCreateBody,
            query=_Include,
        ),
        "GET": Operation(
            "list_items",
            "A conversation's items",
            {"200": Answer("A page of items.", {JSON: ConversationItemList})},
            READ,
            query=_ItemPage,
        ),
    },
    "v1_conversation_item": {
        "GET": Operation(
            "get_item",
            "One item of a conversation",
            {"200": Answer("The item.", {JSON: ConversationItem})},
            READ,
            query=_Include,
        ),
        "DELETE": Operation(
            "delete_item",
            "Delete one item of a conversation",
            {"200": Answer("The conversation, after.", {JSON: Conversation})},
            READ,
        ),
    },
    "v1_models": {
        "GET": Operation(
            "list_models",
            "The configured model's names",
            {"200": Answer("The models.", {JSON: ModelList})},
            ("401", "405", "5XX"),
        )
    },
    "v1_model": {
        "GET": Operation(
            "get_model",
            "One of the configured model's names",
            {"200": Answer("The model.", {JSON: Model})},
            ("401", "404", "405", "5XX"),
        )
    },
}

# A path parameter by the segment before it: what it names, and the type its decoded value has.
PATH_PARAMETERS: Mapping[tuple[str, str], tuple[str, Any]] = {
    ("conversations", "id"): (
        "The conversation ID (the chat routes' `sessionState`), percent-encoded: `/` as %2F, and `.` and `..` "
        "as %2E and %2E%2E.",
        requests.ConversationId,
    ),
    ("responses", "id"): ("The response ID.", requests.ObjectId),
    ("items", "item_id"): ("The item ID.", requests.ObjectId),
    ("models", "model"): ("The model name: the deployment's, or one of CHAT_MODEL_ALIASES.", requests.ModelName),
}

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
        operations = OPERATIONS.get(route.name, {})
        if set(operations) != set(route.methods) - {"HEAD"}:
            raise LookupError(f"OPERATIONS[{route.name!r}] describes {sorted(operations)}, not {sorted(route.methods)}")
        item: dict[str, Any] = {}
        parameters = _path_parameters(route)
        if parameters:
            item["parameters"] = parameters
        for method in route.methods:
            operation = operations["GET" if method == "HEAD" else method]
            item[method.lower()] = _operation(operation, method, door, schemas, responses)
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
    operation: Operation, method: str, door: Door, schemas: _Schemas, responses: dict[str, Any]
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
    if operation.anonymous:
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
    keeps those of union members left out of a schema, such as the unsupported kinds of requests.py)."""
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
