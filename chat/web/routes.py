"""The route table both hosts serve: function_app.py registers each route, chat.local matches them."""

from __future__ import annotations

from collections.abc import Callable

from chat.engine.history import RESPONSE_PREFIX
from chat.web import chat, health, history, openapi_route, toolkit
from chat.web.openai import handlers as openai
from chat.web.toolkit import Route

CHAT = Route("chat", "chat", {"POST": chat.reply})
CHAT_STREAM = Route("chat_stream", "chat/stream", {"POST": chat.stream})
CONVERSATIONS = Route("conversations", "conversations", {"GET": history.conversations})
MESSAGES = Route("conversation_messages", "conversations/{id}/messages", {"GET": history.messages})
CONVERSATION = Route("conversation", "conversations/{id}", {"DELETE": history.delete})
# Anonymous (see function_app.py); it reports a setting that is wrong rather than failing with it.
HEALTH = Route("health", "health", {"GET": health.health, "HEAD": health.health}, misconfigured=health.misconfigured)
# Anonymous too: the OpenAPI document of every route, this one included.
OPENAPI = openapi_route.route(lambda: ROUTES)


# The OpenAI-compatible door: OpenAI's paths under /api/v1, its error shape.
def _v1(
    name: str, path: str, methods: dict[str, toolkit.Handler], accepts: dict[str, Callable[[str], bool]] | None = None
) -> Route:
    return Route(name, "v1/" + path, methods, error_body=openai.error_body, accepts=accepts or {})


def _response_id(segment: str) -> bool:
    # Every response ID starts so; `responses/input_tokens`, `responses/compact` (OpenAI operations
    # not served here) and any other word are no route.
    return segment.startswith(RESPONSE_PREFIX)


V1_RESPONSES = _v1("v1_responses", "responses", {"POST": openai.create_response})
V1_RESPONSE = _v1(
    "v1_response",
    "responses/{id}",
    {"GET": openai.get_response, "DELETE": openai.delete_response},
    accepts={"id": _response_id},
)
V1_INPUT_ITEMS = _v1(
    "v1_response_input_items",
    "responses/{id}/input_items",
    {"GET": openai.response_input_items},
    accepts={"id": _response_id},
)
V1_CONVERSATIONS = _v1("v1_conversations", "conversations", {"POST": openai.create_conversation})
V1_CONVERSATION = _v1(
    "v1_conversation",
    "conversations/{id}",
    {"GET": openai.get_conversation, "POST": openai.update_conversation, "DELETE": openai.delete_conversation},
)
V1_ITEMS = _v1(
    "v1_conversation_items", "conversations/{id}/items", {"POST": openai.create_items, "GET": openai.list_items}
)
V1_ITEM = _v1(
    "v1_conversation_item", "conversations/{id}/items/{item_id}", {"GET": openai.get_item, "DELETE": openai.delete_item}
)
V1_MODELS = _v1("v1_models", "models", {"GET": openai.list_models})
V1_MODEL = _v1("v1_model", "models/{model}", {"GET": openai.get_model})
V1_ROUTES = (
    V1_RESPONSES,
    V1_RESPONSE,
    V1_INPUT_ITEMS,
    V1_CONVERSATIONS,
    V1_CONVERSATION,
    V1_ITEMS,
    V1_ITEM,
    V1_MODELS,
    V1_MODEL,
)
ROUTES: tuple[Route, ...] = (CHAT, CHAT_STREAM, CONVERSATIONS, MESSAGES, CONVERSATION, HEALTH, OPENAPI, *V1_ROUTES)


def match(path: str) -> Route | None:
    """The route of a raw (still percent-encoded) path under /api."""
    return toolkit.match(ROUTES, path)
