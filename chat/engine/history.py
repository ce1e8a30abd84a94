"""The types a turn reads and writes: the conversation, its head, the window, a turn to store.

The store (chat/storage) implements the engine's protocols in ports.py with these.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, TypeVar

from chat.engine.items import FunctionCall, FunctionCallOutput, Item, Message, Turn, Usage


def digest(*parts: str) -> str:
    """SHA-256, in hex, of length-prefixed parts: two different lists of parts never hash alike."""
    h = hashlib.sha256()
    for part in parts:
        # surrogatepass: an owner from a client principal may hold a lone surrogate (JSON "\ud800");
        # it still hashes, and to bytes no other string encodes to.
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


@dataclass(frozen=True)
class Conversation:
    """A conversation as its owner names it."""

    owner: str
    id: str

    @property
    def key(self) -> str:
        """The conversation's opaque key: the owner is part of it, so one ID of two owners is two keys."""
        return digest("conversation", self.owner, self.id)


@dataclass(frozen=True)
class Head:
    """A conversation's head as read: what the next turn's write is conditioned on."""

    latest_turn: int = 0  # the newest turn number, 0 for a conversation never used
    floor: int = 0  # the number a delete raised it to: turns at or below it are deleted, never read
    etag: str | None = None  # None: no head yet, so the next turn creates it

    @property
    def first_turn(self) -> int:
        """The number of the conversation's first turn since it was last deleted."""
        return self.floor + 1


@dataclass(frozen=True)
class History:
    """What a turn reads before it calls the model."""

    turns: list[Turn]  # the window, oldest first
    head: Head
    replay: Turn | None = None  # the turn an Idempotency-Key already produced
    replay_request_hash: str | None = None

    @property
    def latest_turn(self) -> int:
        return self.head.latest_turn


@dataclass(frozen=True)
class NewTurn:
    """A turn to store: its input items, then its output items."""

    inputs: tuple[Item, ...]
    outputs: tuple[Item, ...]
    finish_reason: str | None
    usage: Usage | None
    created_at: str = field(default_factory=lambda: utc_now())
    idempotency_key: str | None = None
    request_hash: str | None = None

    @property
    def items(self) -> tuple[Item, ...]:
        return self.inputs + self.outputs


@dataclass(frozen=True)
class StoredItem:
    """An item as a history page shows it, with its turn's time and, for outputs, how the answer ended."""

    turn: int
    item: Item
    created_at: str
    output: bool
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass(frozen=True)
class ConversationSummary:
    id: str
    title: str
    created_at: str
    updated_at: str
    message_count: int


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def request_hash(inputs: tuple[Item, ...]) -> str:
    """What a request asked for, whatever IDs its items got: a retry with the same Idempotency-Key
    must ask the same."""
    return hashlib.sha256(json.dumps([_content(item) for item in inputs]).encode("utf-8", "surrogatepass")).hexdigest()


def _content(item: Item) -> list[str]:
    if isinstance(item, Message):
        return [item.kind, item.role, item.text]
    if isinstance(item, FunctionCall):
        return [item.kind, item.call_id, item.name, item.arguments]
    assert isinstance(item, FunctionCallOutput)
    return [item.kind, item.call_id, item.output]
