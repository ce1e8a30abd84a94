"""What the OpenAPI document says of each operation, one Operation per method of a route: its
summary, answers, errors, body and query. The route table (routes.py) gives each method its handler
and its Operation; openapi.py builds the document from the table.

Bodies are the models the parsers validate with (chat_protocol.py, openai/requests); query strings
are small models over the parsers' own limits; the chat routes' answers are the models their
handlers build them with (answers.py); the OpenAI-compatible door's are the openai SDK's own types.
Importing this module builds no schema: openapi.py does, at the document's first request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from openai.types import Model
from openai.types.conversations import (
    Conversation,
    ConversationDeletedResource,
    ConversationItem,
    ConversationItemList,
)
from openai.types.responses import CompactedResponse, InputTokenCountResponse, ResponseItemList, ResponseStreamEvent
from openai.types.responses import Response as OpenAIResponse
from openai.types.shared import ErrorObject
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from chat.web import answers, toolkit
from chat.web.chat import JSON_LINES
from chat.web.chat_protocol import ChatRequestBody
from chat.web.openai import requests
from chat.web.openai.handlers import EVENT_STREAM

JSON = toolkit.JSON

# -- the OpenAI door's objects that the SDK has no type for ------------------------------------------


class _OpenAIObject(BaseModel):
    # extra="allow" as the SDK's own types; defer_build: built with the document, not at start.
    model_config = ConfigDict(extra="allow", defer_build=True)


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


class _Query(BaseModel):
    model_config = ConfigDict(defer_build=True)


class _Page(_Query):
    limit: int = Field(toolkit.DEFAULT_PAGE_SIZE, ge=1, le=toolkit.MAX_PAGE_SIZE, description="The page size.")
    cursor: str | SkipJsonSchema[None] = Field(None, description="The opaque `next` of the page before.")


class _Include(_Query):
    include: requests.Includes | SkipJsonSchema[None] = Field(
        None, description="Data to add to items: accepted, and this server never has any of it."
    )


class _ItemPage(_Include):
    after: requests.ObjectId | SkipJsonSchema[None] = Field(None, description="The ID of the item the page follows.")
    limit: int = Field(requests.DEFAULT_PAGE_SIZE, ge=1, le=requests.MAX_PAGE_SIZE, description="The page size.")
    order: Literal["asc", "desc"] = Field("desc", description="Oldest (`asc`) or newest (`desc`) first.")


class _Retrieve(_Include):
    stream: bool = Field(False, description="Stream a background response's events (`true`) instead of reading it.")
    starting_after: int | SkipJsonSchema[None] = Field(
        None, ge=0, description="With `stream`: only the events whose `sequence_number` is above this one."
    )
    include_obfuscation: bool | SkipJsonSchema[None] = Field(None, description="Accepted; events are not padded.")


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


# The error statuses of operations alike.
READ = ("400", "401", "404", "405", "5XX")
LIST = ("400", "401", "405", "5XX")
WRITE = ("400", "401", "404", "405", "409", "413", "415", "5XX")
TURN = ("400", "401", "404", "405", "409", "413", "415", "422", "429", "5XX")
REPLAYED = ("Idempotent-Replayed",)


# -- the operations, by the route they are a method of (routes.py) ----------------------------------

CHAT = Operation(
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

CHAT_STREAM = Operation(
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

LIST_CONVERSATIONS = Operation(
    "list_conversations",
    "The caller's conversations, most recently active first",
    {"200": Answer("A page of conversations.", {JSON: answers.ConversationList})},
    LIST,
    query=_Page,
)

LIST_MESSAGES = Operation(
    "list_messages",
    "A conversation's messages, chronological, paged from the newest",
    {"200": Answer("A page of messages.", {JSON: answers.MessageList})},
    READ,
    query=_Page,
)

DELETE_CONVERSATION = Operation(
    "delete_conversation",
    "Delete a conversation and all its messages",
    {"204": Answer("Deleted, or there was none of that ID: a delete is idempotent.")},
    LIST,
)

HEALTH = Operation(
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
)

OPENAPI = Operation(
    "openapi",
    "This document",
    {"200": Answer("The OpenAPI 3.1 document of every route.", {JSON: {"type": "object"}})},
    ("405", "5XX"),
)

CREATE_RESPONSE = Operation(
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

COUNT_INPUT_TOKENS = Operation(
    "count_input_tokens",
    "A request's input counted as the window budget counts it, with its conversation's or previous "
    "response's window, instructions and tools; the model is not asked and nothing is stored",
    {"200": Answer("The estimate.", {JSON: InputTokenCountResponse})},
    ("400", "401", "404", "405", "413", "415", "5XX"),
    body=requests.InputTokensBody,
    body_required=False,
)

COMPACT = Operation(
    "compact_response",
    "A window (a conversation's, a previous response's, or the input's) summarised by the model into "
    "one compaction item, stored in a conversation in place of what it summarises",
    {"200": Answer("The compaction.", {JSON: CompactedResponse})},
    ("400", "401", "404", "405", "409", "413", "415", "429", "5XX"),
    body=requests.CompactBody,
)

GET_RESPONSE = Operation(
    "get_response",
    "A stored response, or a background one as it stands",
    {
        "200": Answer(
            "The response, as it was answered, or a background one `queued` or `in_progress` with its output "
            "so far; with `stream=true` (background responses only), its server-sent events after "
            "`starting_after`, then the new ones until it ends.",
            {JSON: OpenAIResponse, EVENT_STREAM: ResponseStreamEvent},
        )
    },
    READ,
    query=_Retrieve,
)

CANCEL_RESPONSE = Operation(
    "cancel_response",
    "Stop a background response",
    {"200": Answer("The response, `cancelled`, or as it is when it had already finished.", {JSON: OpenAIResponse})},
    READ,
)

DELETE_RESPONSE = Operation(
    "delete_response",
    "Forget a stored response; its turn stays in its conversation",
    {"200": Answer("Deleted.", {JSON: ResponseDeleted})},
    READ,
)

LIST_INPUT_ITEMS = Operation(
    "list_input_items",
    "A stored response's input items",
    {"200": Answer("A page of items.", {JSON: ResponseItemList})},
    READ,
    query=_ItemPage,
)

CREATE_V1_CONVERSATION = Operation(
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

GET_V1_CONVERSATION = Operation(
    "get_v1_conversation",
    "A conversation",
    {"200": Answer("The conversation.", {JSON: Conversation})},
    READ,
)

UPDATE_V1_CONVERSATION = Operation(
    "update_v1_conversation",
    "Replace a conversation's metadata",
    {"200": Answer("The conversation.", {JSON: Conversation})},
    WRITE,
    body=requests.ConversationUpdateBody,
)

DELETE_V1_CONVERSATION = Operation(
    "delete_v1_conversation",
    "Delete a conversation and all its items",
    {"200": Answer("Deleted.", {JSON: ConversationDeletedResource})},
    READ,
)

CREATE_ITEMS = Operation(
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
)

LIST_ITEMS = Operation(
    "list_items",
    "A conversation's items",
    {"200": Answer("A page of items.", {JSON: ConversationItemList})},
    READ,
    query=_ItemPage,
)

GET_ITEM = Operation(
    "get_item",
    "One item of a conversation",
    {"200": Answer("The item.", {JSON: ConversationItem})},
    READ,
    query=_Include,
)

DELETE_ITEM = Operation(
    "delete_item",
    "Delete one item of a conversation",
    {"200": Answer("The conversation, after.", {JSON: Conversation})},
    READ,
)

LIST_MODELS = Operation(
    "list_models",
    "The configured model's names",
    {"200": Answer("The models.", {JSON: ModelList})},
    LIST,
)

GET_MODEL = Operation(
    "get_model",
    "One of the configured model's names",
    {"200": Answer("The model.", {JSON: Model})},
    READ,
)

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
