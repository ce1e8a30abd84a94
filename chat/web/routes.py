"""The route table both hosts serve: function_app.py registers each route, chat.local matches them."""

from __future__ import annotations

from chat.web import chat, health, history, toolkit
from chat.web.toolkit import Route

CHAT = Route("chat", "chat", {"POST": chat.reply})
CHAT_STREAM = Route("chat_stream", "chat/stream", {"POST": chat.stream})
CONVERSATIONS = Route("conversations", "conversations", {"GET": history.conversations})
MESSAGES = Route("conversation_messages", "conversations/{id}/messages", {"GET": history.messages})
CONVERSATION = Route("conversation", "conversations/{id}", {"DELETE": history.delete})
# Anonymous (see function_app.py); it reports a setting that is wrong rather than failing with it.
HEALTH = Route("health", "health", {"GET": health.health, "HEAD": health.health}, misconfigured=health.misconfigured)
ROUTES = (CHAT, CHAT_STREAM, CONVERSATIONS, MESSAGES, CONVERSATION, HEALTH)


def match(path: str) -> Route | None:
    """The route of a raw (still percent-encoded) path under /api."""
    return toolkit.match(ROUTES, path)
