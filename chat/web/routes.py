"""The route table, the one place each route is said: its path, the Functions function's name, its
methods (each a handler and the OpenAPI operation that documents it), whether it is anonymous, and
its door's error shape.

function_app.py registers a function per route from it, chat.local matches its routes, and
openapi.py documents them; every route but the anonymous ones takes the function key (in Azure)
and its handlers are handed the caller's owner (toolkit.owned).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from chat.engine.ids import RESPONSE_PREFIX
from chat.web import chat, health, history, toolkit
from chat.web import operations as op
from chat.web.openai import compaction
from chat.web.openai import handlers as openai
from chat.web.openapi_route import Document
from chat.web.routing import Method, Route

# The OpenAI-compatible door: OpenAI's paths under /api/v1, its error shape.
V1_PREFIX = "v1/"


def _v1(
    name: str, path: str, methods: Mapping[str, Method], accepts: Mapping[str, Callable[[str], bool]] | None = None
) -> Route:
    return Route(name, V1_PREFIX + path, methods, error_body=openai.error_body, accepts=accepts or {})


def _response_id(segment: str) -> bool:
    # Every response ID starts so: `responses/input_tokens` and `responses/compact` are routes of
    # their own, and any other word is no route.
    return segment.startswith(RESPONSE_PREFIX)


_HEALTH = Method(health.health, op.HEALTH)
_DOCUMENT = Document(lambda: ROUTES)

# The AI Chat Protocol routes, their history, health and this document.
CHAT = Route("chat", "chat", {"POST": Method(chat.reply, op.CHAT)})
CHAT_STREAM = Route("chat_stream", "chat/stream", {"POST": Method(chat.stream, op.CHAT_STREAM)})
CONVERSATIONS = Route("conversations", "conversations", {"GET": Method(history.conversations, op.LIST_CONVERSATIONS)})
MESSAGES = Route(
    "conversation_messages", "conversations/{id}/messages", {"GET": Method(history.messages, op.LIST_MESSAGES)}
)
CONVERSATION = Route("conversation", "conversations/{id}", {"DELETE": Method(history.delete, op.DELETE_CONVERSATION)})
# Health reports a setting that is wrong rather than failing with it.
HEALTH = Route(
    "health", "health", {"GET": _HEALTH, "HEAD": _HEALTH}, anonymous=True, misconfigured=health.misconfigured
)
OPENAPI = Route(
    "openapi",
    "openapi.json",
    {"GET": Method(_DOCUMENT.get, op.OPENAPI)},
    anonymous=True,
    misconfigured=_DOCUMENT.misconfigured,
)

V1_RESPONSES = _v1("v1_responses", "responses", {"POST": Method(openai.create_response, op.CREATE_RESPONSE)})
V1_RESPONSE = _v1(
    "v1_response",
    "responses/{id}",
    {
        "GET": Method(openai.get_response, op.GET_RESPONSE),
        "DELETE": Method(openai.delete_response, op.DELETE_RESPONSE),
    },
    accepts={"id": _response_id},
)
V1_INPUT_TOKENS = _v1(
    "v1_response_input_tokens",
    "responses/input_tokens",
    {"POST": Method(compaction.count_input_tokens, op.COUNT_INPUT_TOKENS)},
)
V1_COMPACT = _v1("v1_response_compact", "responses/compact", {"POST": Method(compaction.compact_response, op.COMPACT)})
V1_INPUT_ITEMS = _v1(
    "v1_response_input_items",
    "responses/{id}/input_items",
    {"GET": Method(openai.response_input_items, op.LIST_INPUT_ITEMS)},
    accepts={"id": _response_id},
)
V1_CANCEL = _v1(
    "v1_response_cancel",
    "responses/{id}/cancel",
    {"POST": Method(openai.cancel_response, op.CANCEL_RESPONSE)},
    accepts={"id": _response_id},
)
V1_CONVERSATIONS = _v1(
    "v1_conversations", "conversations", {"POST": Method(openai.create_conversation, op.CREATE_V1_CONVERSATION)}
)
V1_CONVERSATION = _v1(
    "v1_conversation",
    "conversations/{id}",
    {
        "GET": Method(openai.get_conversation, op.GET_V1_CONVERSATION),
        "POST": Method(openai.update_conversation, op.UPDATE_V1_CONVERSATION),
        "DELETE": Method(openai.delete_conversation, op.DELETE_V1_CONVERSATION),
    },
)
V1_ITEMS = _v1(
    "v1_conversation_items",
    "conversations/{id}/items",
    {"POST": Method(openai.create_items, op.CREATE_ITEMS), "GET": Method(openai.list_items, op.LIST_ITEMS)},
)
V1_ITEM = _v1(
    "v1_conversation_item",
    "conversations/{id}/items/{item_id}",
    {"GET": Method(openai.get_item, op.GET_ITEM), "DELETE": Method(openai.delete_item, op.DELETE_ITEM)},
)
V1_MODELS = _v1("v1_models", "models", {"GET": Method(openai.list_models, op.LIST_MODELS)})
V1_MODEL = _v1("v1_model", "models/{model}", {"GET": Method(openai.get_model, op.GET_MODEL)})

ROUTES: tuple[Route, ...] = (
    CHAT,
    CHAT_STREAM,
    CONVERSATIONS,
    MESSAGES,
    CONVERSATION,
    HEALTH,
    OPENAPI,
    V1_RESPONSES,
    V1_INPUT_TOKENS,
    V1_COMPACT,
    V1_RESPONSE,
    V1_INPUT_ITEMS,
    V1_CANCEL,
    V1_CONVERSATIONS,
    V1_CONVERSATION,
    V1_ITEMS,
    V1_ITEM,
    V1_MODELS,
    V1_MODEL,
)


def match(path: str) -> Route | None:
    """The route of a raw (still percent-encoded) path under /api."""
    return next((route for route in ROUTES if route.match(path) is not None), None)


def error_body_at(path: str) -> toolkit.ErrorBody:
    """The error shape of a raw path no route has: its door's, by where it is."""
    if path.lower().startswith("/api/" + V1_PREFIX):
        return openai.error_body
    return toolkit.error_document
