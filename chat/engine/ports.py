"""What the engine needs from storage and telemetry, as protocols; chat/storage and chat/telemetry.py
implement them, and chat/dependencies.py hands the implementations in. (What it needs from a model
is in model.py.)

Storage is a port per job, each narrow: the history a turn reads (HistoryWindow), the turn it
writes (TurnWrites), items and responses read (ItemReads), deletes (TurnDeletes), the owner's list
(ConversationIndex), the daily quota (TokenLedger), responses still streaming (RunStore), background
responses and their events (JobStore) and the queue they wait in (JobQueue). The
storage adapters bear the same names. TurnStore is the first four in one."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from chat.engine.history import (
    Conversation,
    ConversationSummary,
    Head,
    History,
    ItemPage,
    NewTurn,
    Page,
    ResponseRecord,
    StoredItem,
    StoredResponse,
)
from chat.engine.items import Item, Turn, TurnRef, Usage
from chat.engine.jobs import Job


class HistoryWindow(Protocol):
    """What a turn reads before it calls the model: its conversation's window, or a chain."""

    async def read_history(
        self,
        conversation: Conversation,
        token_budget: int,
        turn_cost: Callable[[Turn], int],
        idempotency_key: str | None = None,
    ) -> History:
        """The newest whole turns whose cost fits the budget, the head they were read under, and the
        turn an Idempotency-Key already produced (with its request hash)."""
        ...

    async def read_head(self, conversation: Conversation) -> Head: ...

    async def read_chain(
        self, owner: str, start: TurnRef, token_budget: int, turn_cost: Callable[[Turn], int]
    ) -> list[Turn]:
        """The turn `start` and those it continues, oldest first, as many as fit the budget."""
        ...


class TurnWrites(Protocol):
    """A turn stored after the head it read, atomically; and what a retry or a lost answer finds."""

    def check_storable(self, conversation: Conversation, turn: NewTurn) -> None:
        """Raise AnswerTooLarge for a turn no single write can hold, before anything is written."""
        ...

    async def append_turn(self, conversation: Conversation, head: Head, turn: NewTurn) -> int:
        """Store the turn after `head`, atomically; its number. TurnConflict if the head changed;
        TurnOutcomeUnknown if the write was sent and its answer lost (it may be stored)."""
        ...

    async def find_turn(self, conversation: Conversation, number: int) -> Turn | None:
        """Turn `number`, if it is stored (whatever the floor)."""
        ...

    async def find_idempotent(
        self, conversation: Conversation, idempotency_key: str, floor: int = 0
    ) -> tuple[Turn, str] | None: ...

    async def index_items(self, conversation: Conversation, number: int, items: Sequence[Item]) -> None:
        """Record, for the conversation's owner, where turn `number`'s items are."""
        ...

    async def create_conversation(
        self, conversation: Conversation, created_at: int, metadata: Mapping[str, str], turn: NewTurn | None
    ) -> None: ...

    async def update_metadata(self, conversation: Conversation, metadata: Mapping[str, str]) -> Head: ...


class ItemReads(Protocol):
    """A conversation's items and the stored responses, as the doors read them."""

    async def items_page(self, conversation: Conversation, limit: int, cursor: str | None) -> Page[StoredItem]: ...

    async def item_list(self, conversation: Conversation, after: str | None, limit: int, order: str) -> ItemPage: ...

    async def get_item(self, conversation: Conversation, item_id: str) -> StoredItem | None: ...

    async def find_owned_item(self, owner: str, item_id: str) -> Item | None:
        """The item the owner has under `item_id`, in a turn still stored, wherever it is."""
        ...

    async def read_response(self, owner: str, response_id: str) -> StoredResponse | None: ...

    async def locate_response(self, owner: str, response_id: str) -> TurnRef | None: ...


class TurnDeletes(Protocol):
    """A conversation deleted (its floor raised, then its rows removed), an item, a response."""

    async def raise_floor(self, conversation: Conversation) -> int: ...

    async def delete_turns(self, conversation: Conversation, floor: int) -> None: ...

    async def delete_item(self, conversation: Conversation, item_id: str) -> bool: ...

    async def delete_response(self, owner: str, response_id: str) -> bool: ...


class TurnStore(HistoryWindow, TurnWrites, ItemReads, TurnDeletes, Protocol):
    """The four ports of a conversation's turns in one: what the composition root is handed and gives
    each use case as the ports it uses (chat/storage/messages.py's store implements all four)."""


class ConversationIndex(Protocol):
    """The owner's conversations, most recently active first."""

    async def record_activity(
        self,
        conversation: Conversation,
        *,
        floor: int,
        first_message: str,
        at: str,
        message_count: int,
        retitle: bool = False,
        ahead: bool = False,
    ) -> None:
        """List the conversation at its turn of `at`; `ahead` (before the turn is stored) lists a
        new entry unconfirmed."""
        ...

    async def recount(self, conversation: Conversation, *, floor: int, message_count: int) -> None:
        """Set the listed count to the head's, after an item was deleted."""
        ...

    async def list_conversations(self, owner: str, limit: int, cursor: str | None) -> Page[ConversationSummary]: ...

    async def forget(self, conversation: Conversation, floor: int) -> None: ...

    async def mark_unconfirmed(self, conversation: Conversation) -> None:
        """Before a delete: readers check the head before they show the entry."""
        ...

    async def confirm(self, conversation: Conversation, floor: int) -> None: ...

    async def discard(self, conversation: Conversation, floor: int) -> None:
        """Remove an unconfirmed entry whose first turn was never stored."""
        ...


class DayCount(Protocol):
    """An owner's token count for a day as one read saw it."""

    @property
    def total(self) -> int:
        """Every token counted, the reservations of turns in flight included."""
        ...

    @property
    def held(self) -> int:
        """The reservations of turns in flight."""
        ...

    @property
    def settled(self) -> int: ...


class TokenLedger(Protocol):
    """Each owner's token count per UTC day, for the daily quota. `seen` is a count this ledger read
    before, which it may use to write without reading again."""

    async def read(self, owner: str, day: str) -> DayCount: ...

    async def add(self, owner: str, day: str, tokens: int, *, held: int = 0, seen: Any = None) -> None: ...


class TurnSpan(Protocol):
    """The trace of one turn."""

    def succeed(self, *, finish_reason: str | None, usage: Usage | None, replayed: bool = False) -> None: ...

    def fail(self, error: BaseException) -> None: ...


class Tracer(Protocol):
    def turn(self, conversation_key: str, model: str, *, streamed: bool) -> TurnSpan: ...


class RunStore(Protocol):
    """Where runs are recorded for every instance to find."""

    async def begin(self, conversation: Conversation, record: ResponseRecord, floor: int) -> None: ...

    async def end(self, conversation: Conversation, response_id: str) -> None: ...

    async def find(self, owner: str, response_id: str) -> tuple[Conversation, ResponseRecord] | None: ...


class JobClash(Exception):
    """A background job's row changed since it was read: read it again."""


class JobDeletes(Protocol):
    """What a delete removes of background responses: every row and blob of a job."""

    async def read(self, response_id: str) -> tuple[Job, str] | None:
        """The job and its row's ETag, or None."""
        ...

    async def delete(self, response_id: str) -> None:
        """The job's row first (a run's next conditional write then fails with JobClash), then
        its request and its events, blobs included. Idempotent."""
        ...

    async def delete_placed_in(self, conversation: Conversation) -> None:
        """Every job of a response placed in the conversation (or chain), as delete() does."""
        ...


class JobStore(JobDeletes, Protocol):
    """Background responses' rows (chat.engine.background.Job) and the events each run streamed,
    for every instance to read. Writes that name an ETag fail with JobClash when the row moved on
    (or is gone: deleted)."""

    async def create(self, job: Job) -> None: ...

    async def update(self, job: Job, etag: str, events: Sequence[tuple[int, str]] = ()) -> str:
        """The job's row as `job` says (and the run's next events, numbered, in the same write),
        if the row is still at `etag`; its new ETag."""
        ...

    async def events(self, response_id: str, after: int) -> list[tuple[int, str]]:
        """The run's stored events numbered above `after`, in order."""
        ...


class JobQueue(Protocol):
    """The queue background jobs wait in: a message carries a job's response ID, nothing else."""

    async def send(self, response_id: str) -> None: ...
