"""POST /v1/conversations and POST /v1/conversations/{id}: a new conversation's items and metadata,
and new metadata."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chat.engine.items import Item
from chat.web.openai.requests.inputs import ConversationItems, engine_items
from chat.web.openai.requests.strict import Strict, validate_body
from chat.web.openai.requests.values import Metadata


@dataclass(frozen=True)
class ConversationCreate:
    items: tuple[Item, ...]
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class ConversationUpdate:
    metadata: Mapping[str, str]


class _ConversationCreateBody(Strict):
    items: ConversationItems | None = None
    metadata: Metadata | None = None


class _ConversationUpdateBody(Strict):
    metadata: Metadata | None  # required, and null clears it


# The bodies' models, whose JSON Schemas /api/openapi.json gives.
ConversationCreateBody = _ConversationCreateBody
ConversationUpdateBody = _ConversationUpdateBody


def parse_conversation_create(body: bytes, *, refuse_instructions: bool = False) -> ConversationCreate:
    """POST /v1/conversations: at most 20 items to start with, and metadata."""
    parsed = validate_body(_ConversationCreateBody, body)
    items = engine_items(parsed.items or [], "items", refuse_instructions=refuse_instructions)
    return ConversationCreate(items, dict(parsed.metadata or {}))


def parse_conversation_update(body: bytes) -> ConversationUpdate:
    """POST /v1/conversations/{id}: new metadata, replacing the old; null clears it."""
    parsed = validate_body(_ConversationUpdateBody, body)
    return ConversationUpdate(dict(parsed.metadata or {}))
