"""The engine's storage ports faked over one conversation's state: no I/O."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from chat.engine.errors import (
    AnswerTooLarge,
    ConversationNotFound,
    StorageUnavailable,
    TurnConflict,
    TurnOutcomeUnknown,
)
from chat.engine.history import (
    Conversation,
    ConversationSummary,
    Head,
    History,
    ItemPage,
    NewTurn,
    Page,
    StoredItem,
    StoredResponse,
)
from chat.engine.items import Item, Message, Turn, TurnRef
from chat.engine.window import compacted


def as_stored(number: int, turn: NewTurn) -> Turn:
    """The turn as the store reads it back."""
    return Turn(number, turn.inputs, turn.outputs, turn.created_at, turn.finish_reason, turn.usage)


def text(items: tuple[Item, ...]) -> str:
    return "".join(item.text for item in items if isinstance(item, Message))


@dataclass(frozen=True)
class FakeDayCount:
    total: int
    held: int

    @property
    def settled(self) -> int:
        return self.total - self.held


class FakeList:
    """The conversation index's methods of FakeStore."""

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
        if self.fail_side_writes and not ahead:
            raise StorageUnavailable("down")
        if ahead and self.fail_ahead:
            raise StorageUnavailable("down")
        if not ahead and self.failing_list_updates:
            self.failing_list_updates -= 1
            raise StorageUnavailable("down")
        if ahead:
            self.listed_ahead.append(message_count)
            return
        self.activity.append(message_count)
        self.listed_floors.append(floor)

    async def mark_unconfirmed(self, conversation: Conversation) -> None:
        self.marked.append(conversation.id)

    async def confirm(self, conversation: Conversation, floor: int) -> None:
        self.repairs.append(("confirm", conversation.id, floor))

    async def discard(self, conversation: Conversation, floor: int) -> None:
        self.repairs.append(("discard", conversation.id, floor))

    async def list_conversations(self, owner: str, limit: int, cursor: str | None) -> Page[ConversationSummary]:
        return Page(list(self.listing), None)

    async def recount(self, conversation: Conversation, *, floor: int, message_count: int) -> None:
        self.activity.append(message_count)

    async def forget(self, conversation: Conversation, floor: int) -> None:
        self.repairs.append(("forget", conversation.id, floor))


class FakeCounts:
    """The token ledger's methods of FakeStore."""

    async def read(self, owner: str, day: str) -> FakeDayCount:
        return FakeDayCount(self.used_tokens, self.held_tokens)

    async def add(self, owner: str, day: str, tokens: int, *, held: int = 0, seen: Any = None) -> None:
        # The first addition is the turn's reservation; the ones after it settle or refund it.
        if self.fail_reservation or (self.fail_side_writes and self.charged):
            raise StorageUnavailable("down")
        if not self.charged:
            self.used_tokens += self.arriving
            self.held_tokens += self.arriving
        elif tokens == held < 0 and self.leaves:
            self.used_tokens -= self.arriving
            self.held_tokens -= self.arriving
            self.leaves = False
        self.charged.append(tokens)
        self.used_tokens += tokens
        self.held_tokens += held


@dataclass
class FakeStore(FakeList, FakeCounts):
    """The turn store, the conversation index and the token ledger of one conversation: one state,
    read and written by the methods of each protocol (FakeList and FakeCounts hold the other two's)."""

    turns: list[Turn] = field(default_factory=list)
    conflicts: int = 0  # how many appends fail as if a concurrent turn took the number
    lost_answers: int = 0  # how many appends store the turn, then lose storage's answer
    unanswered: int = 0  # how many appends lose storage's answer and store nothing
    latest_after_conflict: int = 0
    floor_after_conflict: int = 0  # raised: the conflict was a delete
    floor: int = 0  # the conversation was deleted through this turn number
    replay: Turn | None = None
    replay_hash: str | None = None
    used_tokens: int = 0  # the day's count, reservations of turns in flight included
    held_tokens: int = 0  # the reservations of turns in flight
    arriving: int = 0  # a concurrent turn's reservation, landing beside this turn's first addition
    leaves: bool = False  # that turn is done by the time this one has refunded its reservation
    fail_side_writes: bool = False  # the list update and every count addition after the first fail
    fail_ahead: bool = False  # the list entry written ahead of a first turn fails
    failing_list_updates: int = 0  # how many list updates (not ahead) fail before they succeed
    list_heads: dict[str, Head] = field(default_factory=dict)  # heads read by ID, for list checks
    fail_reservation: bool = False
    budgets: list[int] = field(default_factory=list)  # the token budget of each read
    windows: list[list[int]] = field(default_factory=list)  # the turn numbers each read returned
    appended: list[tuple[int, NewTurn]] = field(default_factory=list)
    activity: list[int] = field(default_factory=list)
    listed_ahead: list[int] = field(default_factory=list)  # entries written ahead of a first turn
    marked: list[str] = field(default_factory=list)  # entries marked unconfirmed before a delete
    repairs: list[tuple[str, str, int]] = field(default_factory=list)
    listing: list[ConversationSummary] = field(default_factory=list)
    indexed: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)  # items indexed for their owner
    owned_items: dict[tuple[str, str], Item] = field(default_factory=dict)  # by owner and item ID
    listed_floors: list[int] = field(default_factory=list)
    charged: list[int] = field(default_factory=list)
    responses: dict[str, StoredResponse] = field(default_factory=dict)
    chain_reads: list[tuple[TurnRef, int]] = field(default_factory=list)  # where each chain read began, its budget
    heads: dict[str, Head] = field(default_factory=dict)  # created conversations, by ID

    async def read_history(
        self,
        conversation: Conversation,
        token_budget: int,
        turn_cost: Callable[[Turn], int],
        idempotency_key: str | None = None,
    ) -> History:
        # As the store does: the newest whole turns whose cost fits the budget, back to the newest compaction.
        window: list[Turn] = []
        spent = 0
        for turn in reversed(self.turns):
            spent += turn_cost(turn)
            if spent > token_budget:
                break
            window.insert(0, turn)
            if compacted(turn):
                break
        self.budgets.append(token_budget)
        self.windows.append([turn.number for turn in window])
        latest = self.turns[-1].number if self.turns else self.floor
        return History(window, Head(latest, self.floor, etag="1"), self.replay, self.replay_hash)

    async def read_head(self, conversation: Conversation) -> Head:
        if conversation.id in self.list_heads:
            return self.list_heads[conversation.id]
        return Head(self.latest_after_conflict, self.floor_after_conflict, etag="2")

    async def find_idempotent(
        self, conversation: Conversation, idempotency_key: str, floor: int = 0
    ) -> tuple[Turn, str] | None:
        return None

    def check_storable(self, conversation: Conversation, turn: NewTurn) -> None:
        if len(text(turn.outputs)) > 1000:
            raise AnswerTooLarge("The answer is too large to store with this message.")

    async def append_turn(self, conversation: Conversation, head: Head, turn: NewTurn) -> int:
        number = head.latest_turn + 1
        if self.conflicts:
            self.conflicts -= 1
            self.latest_after_conflict = max(self.latest_after_conflict, number)
            raise TurnConflict()
        if self.unanswered:
            self.unanswered -= 1
            raise TurnOutcomeUnknown()
        self.appended.append((number, turn))
        if self.lost_answers:
            self.lost_answers -= 1
            self.latest_after_conflict = max(self.latest_after_conflict, number)
            raise TurnOutcomeUnknown()
        return number

    async def index_items(self, conversation: Conversation, number: int, items: Sequence[Item]) -> None:
        self.indexed.append((number, tuple(item.id for item in items)))

    async def find_owned_item(self, owner: str, item_id: str) -> Item | None:
        return self.owned_items.get((owner, item_id))

    async def find_turn(self, conversation: Conversation, number: int) -> Turn | None:
        return next((as_stored(n, turn) for n, turn in self.appended if n == number), None)

    async def items_page(self, conversation: Conversation, limit: int, cursor: str | None) -> Page[StoredItem]:
        return Page([], None)

    async def raise_floor(self, conversation: Conversation) -> int:
        self.floor = self.turns[-1].number if self.turns else self.floor
        return self.floor

    async def delete_turns(self, conversation: Conversation, floor: int) -> None:
        self.turns = [turn for turn in self.turns if turn.number > floor]

    async def create_conversation(
        self, conversation: Conversation, created_at: int, metadata: Any, turn: NewTurn | None
    ) -> None:
        self.heads[conversation.id] = Head(1 if turn else 0, 0, "1", created_at, dict(metadata))
        if turn is not None:
            self.appended.append((1, turn))

    async def update_metadata(self, conversation: Conversation, metadata: Any) -> Head:
        head = self.heads.get(conversation.id)
        if head is None:
            raise ConversationNotFound()
        self.heads[conversation.id] = replace(head, metadata=dict(metadata))
        return self.heads[conversation.id]

    async def read_chain(
        self, owner: str, start: TurnRef, token_budget: int, turn_cost: Callable[[Turn], int]
    ) -> list[Turn]:
        self.chain_reads.append((start, token_budget))
        return [turn for turn in self.turns if turn.number <= start.number]

    async def read_response(self, owner: str, response_id: str) -> StoredResponse | None:
        return self.responses.get(response_id)

    async def locate_response(self, owner: str, response_id: str) -> TurnRef | None:
        found = self.responses.get(response_id)
        return TurnRef(found.conversation_id, found.turn.number) if found else None

    async def delete_response(self, owner: str, response_id: str) -> bool:
        return self.responses.pop(response_id, None) is not None

    async def get_item(self, conversation: Conversation, item_id: str) -> StoredItem | None:
        return None

    async def delete_item(self, conversation: Conversation, item_id: str) -> bool:
        return False

    async def item_list(self, conversation: Conversation, after: str | None, limit: int, order: str) -> ItemPage:
        return ItemPage([], has_more=False)
