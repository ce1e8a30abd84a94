"""The types a turn reads and writes: the conversation, its head, the window, a turn to store.

The store (chat/storage) implements the engine's protocols in ports.py with these.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Generic, TypeVar

from chat.engine.clock import utc_now
from chat.engine.ids import CHAIN_MARK, RESPONSE_PREFIX, RESPONSE_RANDOM_HEX, digest, is_lower_hex
from chat.engine.items import (
    Compaction,
    ContentPart,
    FunctionCall,
    FunctionCallOutput,
    ImagePart,
    Item,
    Message,
    Turn,
    TurnRef,
    Usage,
)

_KEY_HEX = 64  # Conversation.key


@dataclass(frozen=True)
class Conversation:
    """A conversation as its owner names it."""

    owner: str
    id: str

    @cached_property
    def key(self) -> str:
        """The conversation's opaque key: the owner is part of it, so one ID of two owners is two keys.
        (A hash, read many times a turn: worked out once.)"""
        return digest("conversation", self.owner, self.id)

    @property
    def is_chain(self) -> bool:
        """Whether this is a response chain rather than a conversation: never listed, never named."""
        return is_chain(self.id)


def is_chain(conversation_id: str) -> bool:
    return conversation_id.startswith(CHAIN_MARK)


def response_partition(response_id: str) -> str | None:
    """The conversation key a stored response's ID names, or None if it names none."""
    body = response_id.removeprefix(RESPONSE_PREFIX)
    if len(response_id) == len(body) or len(body) != _KEY_HEX + RESPONSE_RANDOM_HEX:
        return None
    if not is_lower_hex(body):
        return None
    return body[:_KEY_HEX]


@dataclass(frozen=True)
class Head:
    """A conversation's head as read: what the next turn's write is conditioned on."""

    latest_turn: int = 0  # the newest turn number, 0 for a conversation never used
    floor: int = 0  # the number a delete raised it to: turns at or below it are deleted, never read
    etag: str | None = None  # None: no head yet, so the next turn creates it
    created_at: int | None = None  # Unix seconds of its first write since it was (re)started
    metadata: Mapping[str, str] = field(default_factory=dict)  # a client's labels (OpenAI's `metadata`)
    items: int | None = None  # how many items its turns hold; None for a head that never counted them
    updated_at: str | None = None  # its newest turn's time (utc_now); None for a head that never kept it

    @property
    def first_turn(self) -> int:
        """The number of the conversation's first turn since it was last deleted."""
        return self.floor + 1

    @property
    def item_count(self) -> int:
        """The items of the conversation's turns (a head written before they were counted: two a turn)."""
        return self.items if self.items is not None else 2 * (self.latest_turn - self.floor)

    @property
    def exists(self) -> bool:
        """Whether the conversation exists: created, or holding turns, since it was last deleted."""
        return self.created_at is not None or self.latest_turn > self.floor


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
    created_at: str = field(default_factory=utc_now)
    idempotency_key: str | None = None
    request_hash: str | None = None
    response: ResponseRecord | None = None  # the response this turn answers, kept with it
    continues: TurnRef | None = None  # in a response chain, the turn it continues (None: the first)
    ends_run: bool = False  # a streamed response's: its transaction closes the response's in-progress row

    @property
    def items(self) -> tuple[Item, ...]:
        return self.inputs + self.outputs


@dataclass(frozen=True)
class ResponseRecord:
    """A response of the OpenAI-compatible door: its ID, and what that door keeps of it besides
    its items (opaque here)."""

    id: str
    data: str


@dataclass(frozen=True)
class StoredResponse:
    """A stored response: its record, where its turn is, and the turn."""

    record: ResponseRecord
    conversation_id: str
    turn: Turn

    @property
    def in_chain(self) -> bool:
        return is_chain(self.conversation_id)


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
class ConversationInfo:
    """A conversation as the OpenAI-compatible door shows it."""

    id: str
    created_at: int
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class ItemPage:
    """A page of items in the order asked for, and whether more follow."""

    items: list[StoredItem]
    has_more: bool


@dataclass(frozen=True)
class ConversationSummary:
    id: str
    title: str
    created_at: str
    updated_at: str
    message_count: int
    floor: int = 0  # the head's floor the entry was written under
    # Set while the entry is written ahead of what it lists (a first turn, or a delete) and not
    # yet confirmed by it: Unix seconds of that write. A reader checks such an entry's head.
    unconfirmed_since: int | None = None
    head: Head | None = None  # the conversation's head, if the list read it


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def request_hash(inputs: tuple[Item, ...]) -> str:
    """What a request asked for, whatever IDs its items got: a retry with the same Idempotency-Key
    must ask the same."""
    return hashlib.sha256(json.dumps([_content(item) for item in inputs]).encode("utf-8", "surrogatepass")).hexdigest()


def _content(item: Item) -> list[Any]:
    if isinstance(item, Message):
        return [item.kind, item.role, item.text, *(["refusal"] if item.refusal else []), *_parts(item.parts)]
    if isinstance(item, FunctionCall):
        return [item.kind, item.call_id, item.name, item.arguments]
    if isinstance(item, Compaction):
        return [item.kind, item.summary]
    assert isinstance(item, FunctionCallOutput)
    return [item.kind, item.call_id, item.output, *_parts(item.parts)]


def _parts(parts: tuple[ContentPart, ...]) -> list[Any]:
    """An item's parts, its images and files among its text, for the hash: a retry must send the
    same ones. Nothing for text alone, so a text item's hash is what it always was."""
    if not parts:
        return []
    return [[_part(part) for part in parts]]


def _part(part: ContentPart) -> list[str]:
    if isinstance(part, str):
        return ["t", part]
    if isinstance(part, ImagePart):
        return ["i", part.url, part.detail]
    return ["f", part.data, part.filename]
