"""The service through its seams: fakes of the engine's own protocols (store, model, tracer), no I/O."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from chat.bootstrap import Engine, Policy, compose
from chat.engine import quota as quota_module
from chat.engine import turn as turn_module
from chat.engine import views as views_module
from chat.engine.commit import MAX_COMMIT_ATTEMPTS
from chat.engine.errors import (
    AnswerTooLarge,
    ContextTooLong,
    ConversationBusy,
    ConversationNotFound,
    IdempotencyKeyReused,
    ModelUnavailable,
    RateLimited,
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
    ResponseRecord,
    StoredItem,
    StoredResponse,
    is_chain,
    request_hash,
    response_partition,
)
from chat.engine.items import (
    FunctionCall,
    Item,
    Message,
    Turn,
    TurnRef,
    Usage,
    function_call_output,
    message,
)
from chat.engine.model import (
    ArgumentsDelta,
    Completion,
    Finished,
    FunctionTool,
    ItemStarted,
    Model,
    ModelEvent,
    ModelRequest,
    NamedFunction,
    TextDelta,
)
from chat.engine.ports import ConversationIndex, DayCount, TokenLedger, Tracer, TurnSpan, TurnStore
from chat.engine.quota import BUSY_RETRY_AFTER_SECONDS
from chat.engine.tokens import estimate_tokens
from chat.engine.turns import Done, Failed, StreamEvent, TurnInput
from chat.engine.window import turn_cost
from chat.web.errors import status_of

pytestmark = pytest.mark.anyio

CREATED = "2026-01-01T00:00:00Z"
HELLO = Message("msg_hello", "assistant", "Hello")  # what the fake model answers unless told otherwise


@pytest.fixture(autouse=True)
def no_reserve_backoff(monkeypatch):
    """Turns kept out by turns in flight try again at once here: the fakes need no waiting."""
    monkeypatch.setattr(quota_module, "RESERVE_BACKOFF_SECONDS", 0)


def stored_turn(number: int, user: str, answer: str) -> Turn:
    return Turn(
        number=number,
        inputs=(Message(f"msg_u{number}", "user", user),),
        outputs=(Message(f"msg_a{number}", "assistant", answer),),
        created_at=CREATED,
        finish_reason="stop",
        usage=Usage(1, 1),
    )


def as_stored(number: int, turn: NewTurn) -> Turn:
    """The turn as the store reads it back."""
    return Turn(number, turn.inputs, turn.outputs, turn.created_at, turn.finish_reason, turn.usage)


def text(items: tuple[Item, ...]) -> str:
    return "".join(item.text for item in items if isinstance(item, Message))


def prompt(request: ModelRequest) -> list[dict[str, str]]:
    """A request of messages only as the model reads it: the system prompt, then each message."""
    messages = [{"role": "system", "content": request.system_prompt}]
    for item in request.items:
        assert isinstance(item, Message), item
        messages.append({"role": item.role, "content": item.text})
    return messages


@dataclass(frozen=True)
class FakeDayCount:
    total: int
    held: int

    @property
    def settled(self) -> int:
        return self.total - self.held


@dataclass
class FakeStore:
    """The turn store, the conversation index and the token ledger of one conversation."""

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
        # As the store does: the newest whole turns whose cost fits the budget.
        window: list[Turn] = []
        spent = 0
        for turn in reversed(self.turns):
            spent += turn_cost(turn)
            if spent > token_budget:
                break
            window.insert(0, turn)
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

    async def ping(self) -> None:
        pass

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
class FakeModel:
    name: str = "fake"
    failures: list[Exception] = field(default_factory=list)
    answers: list[Completion] = field(default_factory=list)  # what it answers, in turn; then HELLO
    requests: list[ModelRequest] = field(default_factory=list)
    gate: asyncio.Event | None = None  # streaming waits on it after the first piece of text
    cut: ModelUnavailable | None = None  # the stream fails with it after its pieces
    unfinished: bool = False  # the stream ends after its pieces without a Finished

    async def complete(self, request: ModelRequest) -> Completion:
        self.requests.append(request)
        if self.failures:
            raise self.failures.pop(0)
        return self._answer()

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        self.requests.append(request)
        if self.failures:
            raise self.failures.pop(0)
        return self._events(self._answer())

    async def check(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def _answer(self) -> Completion:
        return self.answers.pop(0) if self.answers else Completion((HELLO,), "stop", Usage(10, 2))

    async def _events(self, completion: Completion) -> AsyncIterator[ModelEvent]:
        for item in completion.outputs:
            if isinstance(item, Message):
                yield ItemStarted(replace(item, text=""))
                for index, piece in enumerate(pieces(item.text)):
                    yield TextDelta(item.id, piece)
                    if index == 0 and self.gate is not None:
                        await self.gate.wait()
            elif isinstance(item, FunctionCall):
                yield ItemStarted(replace(item, arguments=""))
                yield ArgumentsDelta(item.id, item.arguments)
        if self.cut is not None:
            raise self.cut
        if not self.unfinished:
            yield Finished(completion)


def pieces(text: str) -> list[str]:
    """Text as the fake model streams it: three characters at a time ("Hel", "lo")."""
    return [text[i : i + 3] for i in range(0, len(text), 3)]


@dataclass
class FakeSpan:
    conversation_key: str
    streamed: bool
    endings: list[str] = field(default_factory=list)  # how the span ended, each time it did

    def succeed(self, *, finish_reason: str | None, usage: Usage | None, replayed: bool = False) -> None:
        self.endings.append(f"succeeded: {finish_reason}")

    def fail(self, error: BaseException) -> None:
        self.endings.append(f"failed: {type(error).__name__}")


@dataclass
class FakeTracer:
    spans: list[FakeSpan] = field(default_factory=list)

    def turn(self, conversation_key: str, model: str, *, streamed: bool) -> FakeSpan:
        span = FakeSpan(conversation_key, streamed)
        self.spans.append(span)
        return span


def service(
    store: FakeStore,
    model: FakeModel,
    *,
    tracer: Tracer | None = None,
    shutdown_grace_seconds: float = 30.0,
    **policy: Any,
) -> Engine:
    # The fake store plays the history, the conversation list and the token counts.
    if policy.get("daily_token_quota"):
        policy.setdefault("max_answer_tokens", CAP)
    policy.setdefault("history_token_budget", 1000)
    return compose(
        store,
        store,
        store,
        model,
        Policy(system_prompt="sys", **policy),
        tracer=tracer,
        shutdown_grace_seconds=shutdown_grace_seconds,
    )


CAP = 20
# What a turn "hi" reserves with no history: the estimates of "sys" and "hi", and the answer cap.
RESERVED = estimate_tokens("sys") + estimate_tokens("hi") + CAP


def turn(content="hi", conversation_id="c1", key=None) -> TurnInput:
    return TurnInput((message("user", content),), conversation_id, idempotency_key=key)


def started(item: Message) -> ItemStarted:
    return ItemStarted(replace(item, text=""))


async def all_events(events: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    # Bounded, so a stream that never ends fails the test instead of hanging it.
    async def read() -> list[StreamEvent]:
        return [event async for event in events]

    return await asyncio.wait_for(read(), timeout=10)


@pytest.mark.parametrize(
    ("fake", "protocol"),
    [
        (FakeStore(), TurnStore),
        (FakeStore(), ConversationIndex),
        (FakeStore(), TokenLedger),
        (FakeDayCount(0, 0), DayCount),
        (FakeModel(), Model),
        (FakeTracer(), Tracer),
        (FakeSpan("k", streamed=False), TurnSpan),
    ],
)
def test_the_fakes_implement_the_engines_protocols(fake, protocol):
    members = [name for name in vars(protocol) if not name.startswith("_")]
    assert members
    for name in members:
        wanted = inspect.getattr_static(protocol, name)
        assert hasattr(fake, name), name
        if isinstance(wanted, property):
            continue
        implemented = getattr(type(fake), name)
        assert inspect.iscoroutinefunction(implemented) == inspect.iscoroutinefunction(wanted), name
        shape = [(p.name, p.kind, p.default) for p in inspect.signature(wanted).parameters.values()]
        assert [(p.name, p.kind, p.default) for p in inspect.signature(implemented).parameters.values()] == shape


async def test_prompt_is_system_history_then_the_new_message():
    store = FakeStore(turns=[stored_turn(1, "a", "b")])
    model = FakeModel()
    answer = await service(store, model).turns.reply("app", turn("c"))
    assert [prompt(request) for request in model.requests] == [
        [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
        ]
    ]
    assert answer.text == "Hello" and answer.conversation_id == "c1"
    assert [number for number, _ in store.appended] == [2]
    assert store.activity == [4]


async def test_a_turn_that_loses_the_race_is_renumbered_and_the_count_follows():
    store = FakeStore(turns=[stored_turn(1, "a", "b")], conflicts=2)
    await service(store, FakeModel()).turns.reply("app", turn())
    assert [number for number, _ in store.appended] == [4]
    assert store.activity == [4, 8]


async def test_a_turn_that_loses_to_a_delete_is_not_found_stores_nothing_and_is_not_listed_after():
    store = FakeStore(turns=[stored_turn(1, "a", "b")], conflicts=1, latest_after_conflict=3, floor_after_conflict=3)
    with pytest.raises(ConversationNotFound) as raised:
        await service(store, FakeModel()).turns.reply("app", turn())
    assert "deleted" in raised.value.message
    assert store.appended == []
    # Only the update beside the transaction ran, under the floor the turn read.
    assert store.activity == [4] and store.listed_floors == [0]


async def test_a_stream_that_loses_to_a_delete_ends_with_not_found():
    store = FakeStore(conflicts=1, latest_after_conflict=1, floor_after_conflict=2)
    streamed = await service(store, FakeModel()).turns.stream("app", turn())
    events = await all_events(streamed.events)
    assert events[:3] == [started(HELLO), TextDelta(HELLO.id, "Hel"), TextDelta(HELLO.id, "lo")]
    assert isinstance(events[-1], Failed) and events[-1].error.code == "conversation_not_found"
    assert store.appended == [] and store.activity == []


async def test_a_conversation_started_afresh_after_a_delete_counts_from_its_floor():
    store = FakeStore(floor=7)
    await service(store, FakeModel()).turns.reply("app", turn())
    assert [number for number, _ in store.appended] == [8]
    assert store.activity == [2] and store.listed_floors == [7]
    store.turns = [stored_turn(8, "hi", "Hello")]
    await service(store, FakeModel()).turns.reply("app", turn("again"))
    assert [number for number, _ in store.appended] == [8, 9]
    assert store.activity == [2, 4] and store.listed_floors == [7, 7]


async def test_a_turn_stored_whose_answer_was_lost_is_answered_as_stored_once():
    store = FakeStore(turns=[stored_turn(1, "a", "b")], lost_answers=1)
    answer = await service(store, FakeModel()).turns.reply("app", turn())
    assert answer.text == "Hello" and not answer.replayed
    assert [number for number, _ in store.appended] == [2]
    assert store.activity == [4]


async def test_a_streamed_turn_stored_whose_answer_was_lost_ends_done():
    store = FakeStore(lost_answers=1)
    streamed = await service(store, FakeModel()).turns.stream("app", turn())
    events = await all_events(streamed.events)
    assert isinstance(events[-1], Done)
    assert [number for number, _ in store.appended] == [1]


async def test_a_turn_whose_write_went_unanswered_and_unstored_is_written_again_once():
    store = FakeStore(turns=[stored_turn(1, "a", "b")], unanswered=1, latest_after_conflict=1)
    answer = await service(store, FakeModel()).turns.reply("app", turn())
    assert answer.text == "Hello"
    assert [number for number, _ in store.appended] == [2]


async def test_endless_conflicts_are_a_busy_conversation_and_store_nothing():
    store = FakeStore(conflicts=MAX_COMMIT_ATTEMPTS)
    with pytest.raises(ConversationBusy):
        await service(store, FakeModel()).turns.reply("app", turn())
    assert store.appended == []


async def test_context_length_exceeded_halves_the_window_once():
    store = FakeStore(turns=[stored_turn(n, f"u{n}", f"a{n}") for n in range(1, 6)])
    model = FakeModel(failures=[ContextTooLong("too long")])
    await service(store, model).turns.reply("app", turn())
    prompts = [prompt(request) for request in model.requests]
    assert [len(p) for p in prompts] == [12, 6]
    assert prompts[1][1]["content"] == "u4"


async def test_context_length_exceeded_with_no_history_left_is_the_clients_error():
    model = FakeModel(failures=[ContextTooLong("too long")])
    with pytest.raises(ContextTooLong):
        await service(FakeStore(), model).turns.reply("app", turn())


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_failed_model_call_stores_nothing(streamed):
    store = FakeStore()
    model = FakeModel(failures=[ModelUnavailable("down")])
    chat = service(store, model)
    with pytest.raises(ModelUnavailable):
        if streamed:
            await chat.turns.stream("app", turn())
        else:
            await chat.turns.reply("app", turn())
    assert store.appended == [] and store.activity == []


async def test_an_idempotent_retry_replays_without_calling_the_model():
    store = FakeStore(replay=stored_turn(3, "hi", "first answer"), replay_hash=request_hash((message("user", "hi"),)))
    model = FakeModel()
    answer = await service(store, model).turns.reply("app", turn("hi", key="k"))
    assert answer.replayed and answer.text == "first answer"
    assert model.requests == [] and store.appended == []


async def test_an_idempotency_key_reused_for_another_message_is_refused():
    store = FakeStore(replay=stored_turn(3, "hi", "first answer"), replay_hash=request_hash((message("user", "hi"),)))
    with pytest.raises(IdempotencyKeyReused):
        await service(store, FakeModel()).turns.reply("app", turn("something else", key="k"))


async def test_a_new_conversation_of_a_retried_request_gets_the_same_id():
    chat = service(FakeStore(), FakeModel())
    first = await chat.turns.reply("app", turn(conversation_id=None, key="k1"))
    again = await chat.turns.reply("app", turn(conversation_id=None, key="k1"))
    other_owner = await chat.turns.reply("someone", turn(conversation_id=None, key="k1"))
    fresh = await chat.turns.reply("app", turn(conversation_id=None))
    assert first.conversation_id == again.conversation_id != other_owner.conversation_id
    assert fresh.conversation_id not in (first.conversation_id, other_owner.conversation_id)


async def test_a_stream_left_by_its_client_is_still_stored():
    store = FakeStore()
    gate = asyncio.Event()
    chat = service(store, FakeModel(gate=gate))
    streamed = await chat.turns.stream("app", turn())
    events = streamed.events
    assert await anext(events) == started(HELLO)
    assert await anext(events) == TextDelta(HELLO.id, "Hel")
    await events.aclose()  # the client went away
    gate.set()
    await chat.aclose()
    [(_, stored)] = store.appended
    assert text(stored.outputs) == "Hello" and stored.finish_reason == "stop"


async def test_a_stream_ends_with_done_after_the_turn_is_stored():
    store = FakeStore()
    streamed = await service(store, FakeModel()).turns.stream("app", turn())
    events = await all_events(streamed.events)
    assert events == [
        started(HELLO),
        TextDelta(HELLO.id, "Hel"),
        TextDelta(HELLO.id, "lo"),
        Done("stop", Usage(10, 2), (HELLO,), store.appended[0][1].created_at),
    ]
    # The Done says when the turn it ends was made: the time of the stored turn.
    assert len(store.appended) == 1 and store.appended[0][1].created_at


async def test_a_storage_failure_at_the_end_of_a_stream_is_its_last_event():
    store = FakeStore()

    async def refuse(*args):
        raise StorageUnavailable("Storage is unreachable; try again.")

    store.append_turn = refuse
    streamed = await service(store, FakeModel()).turns.stream("app", turn())
    events = await all_events(streamed.events)
    assert isinstance(events[-1], Failed) and events[-1].error.code == "storage_unavailable"


async def test_failing_side_writes_do_not_fail_a_stored_turn():
    store = FakeStore(fail_side_writes=True)
    answer = await service(store, FakeModel(), daily_token_quota=100).turns.reply("app", turn())
    assert answer.text == "Hello" and len(store.appended) == 1


async def test_a_first_turn_is_listed_ahead_of_its_write_and_confirmed_after():
    store = FakeStore()
    await service(store, FakeModel()).turns.reply("app", turn())
    assert store.listed_ahead == [2] and store.activity == [2]
    assert len(store.appended) == 1


async def test_a_first_turn_whose_list_entry_cannot_be_written_fails_and_stores_nothing():
    store = FakeStore(fail_ahead=True)
    with pytest.raises(StorageUnavailable):
        await service(store, FakeModel()).turns.reply("app", turn())
    assert store.appended == [] and store.activity == []


async def test_a_continuing_turns_list_update_that_fails_beside_the_write_is_tried_again():
    store = FakeStore(turns=[stored_turn(1, "a", "b")], failing_list_updates=1)
    await service(store, FakeModel()).turns.reply("app", turn())
    assert store.listed_ahead == [] and store.activity == [4]


async def test_a_delete_marks_the_list_entry_before_it_raises_the_floor():
    store = FakeStore(turns=[stored_turn(1, "a", "b")])
    await service(store, FakeModel()).deletes.conversation("app", "c1")
    assert store.marked == ["c1"]
    assert store.repairs == [("forget", "c1", 1)]


def summary(conversation_id: str, *, floor: int = 0, since: int | None = None) -> ConversationSummary:
    at = "2026-01-01T00:00:00Z"
    return ConversationSummary(conversation_id, conversation_id, at, at, 2, floor, since)


async def test_the_list_shows_an_unconfirmed_entry_only_if_its_head_says_it_exists():
    now = int(time.time())
    store = FakeStore(
        listing=[
            summary("plain"),
            summary("stored", since=now),
            summary("never-stored", since=now),
            summary("deleted", since=now),
        ],
        list_heads={"stored": Head(1, 0, "e"), "never-stored": Head(), "deleted": Head(2, 2, "e")},
    )
    page = await service(store, FakeModel()).views.conversations("app", 20, None)
    assert [c.id for c in page.items] == ["plain", "stored"]
    assert store.repairs == []  # young marks: their turn or delete may still be in flight


async def test_the_list_puts_old_unconfirmed_entries_right():
    old = int(time.time()) - views_module.UNCONFIRMED_GRACE_SECONDS - 1
    store = FakeStore(
        listing=[summary("stored", since=old), summary("never-stored", since=old), summary("deleted", since=old)],
        list_heads={"stored": Head(1, 0, "e"), "never-stored": Head(), "deleted": Head(2, 2, "e")},
    )
    page = await service(store, FakeModel()).views.conversations("app", 20, None)
    assert [c.id for c in page.items] == ["stored"]
    assert sorted(store.repairs) == [("confirm", "stored", 0), ("discard", "never-stored", 0), ("forget", "deleted", 2)]


async def test_the_quota_is_checked_before_the_model_and_charged_after():
    store = FakeStore(used_tokens=100 - RESERVED)
    model = FakeModel()
    chat = service(store, model, daily_token_quota=100)
    await chat.turns.reply("app", turn())
    # Reserved before the model (the prompt's estimate and the cap), settled to the usage after.
    assert store.charged == [RESERVED, 12 - RESERVED]
    assert (store.used_tokens, store.held_tokens) == (100 - RESERVED + 12, 0)
    store.used_tokens = 100
    with pytest.raises(RateLimited) as refused:
        await chat.turns.reply("app", turn())
    assert refused.value.code == "quota_exceeded" and 0 < refused.value.retry_after <= 86_400
    assert len(model.requests) == 1


@pytest.mark.parametrize("streamed", [False, True])
async def test_the_answer_cap_goes_to_the_model_with_a_quota(streamed):
    model = FakeModel()
    chat = service(FakeStore(), model, daily_token_quota=1000)
    if streamed:
        await all_events((await chat.turns.stream("app", turn())).events)
    else:
        await chat.turns.reply("app", turn())
    assert [request.max_output_tokens for request in model.requests] == [CAP]


async def test_a_turn_whose_reservation_does_not_fit_is_refused_before_the_model_and_writes_nothing():
    store = FakeStore(used_tokens=101 - RESERVED)
    model = FakeModel()
    with pytest.raises(RateLimited) as refused:
        await service(store, model, daily_token_quota=100).turns.reply("app", turn())
    assert refused.value.code == "quota_exceeded" and refused.value.retry_after > 0
    assert model.requests == [] and store.charged == [] and store.appended == []


async def test_a_turn_larger_than_the_whole_quota_says_so():
    with pytest.raises(RateLimited) as refused:
        await service(FakeStore(), FakeModel(), daily_token_quota=100).turns.reply("app", turn("x" * 300))
    assert "more than the daily quota of 100" in refused.value.message


async def test_a_turn_that_concurrent_turns_leave_no_room_for_is_refunded_and_refused_for_a_moment():
    # Both fit alone; the other turn's reservation lands between this one's addition and its read,
    # and that turn is still in flight whenever this one looks again.
    store = FakeStore(arriving=100 - RESERVED + 1)
    model = FakeModel()
    with pytest.raises(RateLimited) as refused:
        await service(store, model, daily_token_quota=100).turns.reply("app", turn())
    assert refused.value.code == "quota_exceeded" and refused.value.retry_after == BUSY_RETRY_AFTER_SECONDS
    assert "in progress" in refused.value.message
    assert store.charged == [RESERVED, -RESERVED] and model.requests == [] and store.appended == []
    assert (store.used_tokens, store.held_tokens) == (100 - RESERVED + 1,) * 2


async def test_a_turn_kept_out_by_a_turn_in_flight_gets_in_once_that_one_is_done():
    store = FakeStore(arriving=100 - RESERVED + 1, leaves=True)
    answer = await service(store, FakeModel(), daily_token_quota=100).turns.reply("app", turn())
    assert answer.text == "Hello"
    assert store.charged == [RESERVED, -RESERVED, RESERVED, 12 - RESERVED]
    assert (store.used_tokens, store.held_tokens) == (12, 0)


async def test_a_turn_kept_out_by_settled_turns_is_refused_until_midnight():
    store = FakeStore(used_tokens=100 - RESERVED + 1, held_tokens=0)
    with pytest.raises(RateLimited) as refused:
        await service(store, FakeModel(), daily_token_quota=100).turns.reply("app", turn())
    assert "renews at midnight UTC" in refused.value.message and store.charged == []


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_failed_model_call_refunds_its_reservation(streamed):
    store = FakeStore()
    chat = service(store, FakeModel(failures=[ModelUnavailable("down")]), daily_token_quota=100)
    with pytest.raises(ModelUnavailable):
        await (chat.turns.stream if streamed else chat.turns.reply)("app", turn())
    assert store.charged == [RESERVED, -RESERVED] and (store.used_tokens, store.held_tokens) == (0, 0)


async def test_a_stream_cut_mid_answer_is_charged_its_prompt_and_the_text_it_sent():
    store = FakeStore()
    model = FakeModel(cut=ModelUnavailable("cut", code="model_stream_interrupted"))
    streamed = await service(store, model, daily_token_quota=100).turns.stream("app", turn())
    events = await all_events(streamed.events)
    assert isinstance(events[-1], Failed) and store.appended == []
    assert store.used_tokens == estimate_tokens("sys") + estimate_tokens("hi") + estimate_tokens("Hello")
    assert store.held_tokens == 0


async def test_a_reservation_that_cannot_be_written_refuses_the_turn_before_the_model():
    store = FakeStore(fail_reservation=True)
    model = FakeModel()
    with pytest.raises(StorageUnavailable):
        await service(store, model, daily_token_quota=100).turns.reply("app", turn())
    assert model.requests == [] and store.appended == []


async def test_a_settle_that_fails_keeps_the_reservation_and_says_so(caplog):
    store = FakeStore(fail_side_writes=True)
    answer = await service(store, FakeModel(), daily_token_quota=100).turns.reply("app", turn())
    assert answer.text == "Hello" and len(store.appended) == 1
    # The whole reservation stays counted: more than the turn used, never less.
    assert (store.used_tokens, store.held_tokens) == (RESERVED, RESERVED)
    assert any("not settled" in record.getMessage() and record.levelname == "WARNING" for record in caplog.records)


async def test_a_turn_the_model_answers_is_charged_even_when_storing_it_fails():
    store = FakeStore()

    async def refuse(*args):
        raise StorageUnavailable("Storage is unreachable; try again.")

    store.append_turn = refuse
    with pytest.raises(StorageUnavailable):
        await service(store, FakeModel(), daily_token_quota=100).turns.reply("app", turn())
    assert store.used_tokens == 12


def test_a_quota_needs_an_answer_cap():
    with pytest.raises(ValueError, match="max_answer_tokens"):
        compose(
            FakeStore(),
            FakeStore(),
            FakeStore(),
            FakeModel(),
            Policy(system_prompt="s", history_token_budget=1, daily_token_quota=100),
        )


async def test_a_turn_too_large_to_store_writes_nothing_not_even_the_list_entry():
    store = FakeStore()
    model = FakeModel(answers=[Completion((message("assistant", "x" * 1001),), "stop", Usage(1, 1))])
    with pytest.raises(AnswerTooLarge):
        await service(store, model).turns.reply("app", turn())
    assert store.appended == [] and store.activity == []


async def test_a_new_conversation_whose_first_turn_fails_to_store_is_not_listed():
    store = FakeStore()

    async def refuse(*args):
        raise StorageUnavailable("Storage is unreachable; try again.")

    store.append_turn = refuse
    with pytest.raises(StorageUnavailable):
        await service(store, FakeModel()).turns.reply("app", turn())
    assert store.activity == []


async def test_a_continued_conversation_is_listed_beside_its_turn_not_after():
    store = FakeStore(turns=[stored_turn(1, "a", "b")])
    listing_started = asyncio.Event()
    append, record = store.append_turn, store.record_activity

    async def appending(*args):
        # Only completes if the list update runs beside the transaction, not after it.
        await asyncio.wait_for(listing_started.wait(), timeout=10)
        return await append(*args)

    async def recording(*args, **kwargs):
        listing_started.set()
        return await record(*args, **kwargs)

    store.append_turn, store.record_activity = appending, recording
    await service(store, FakeModel()).turns.reply("app", turn())
    assert store.activity == [4] and len(store.appended) == 1


# -- function tools ------------------------------------------------------------------------

WEATHER = FunctionTool(
    "weather",
    "The weather in a city now.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CALL = FunctionCall("fc_oslo", "call_oslo", "weather", '{"city": "Oslo"}')
IT_IS = Message("msg_it_is", "assistant", "It is -3 C.")


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_function_call_is_stored_and_goes_back_to_the_model_with_its_output(streamed):
    store = FakeStore()
    model = FakeModel(
        answers=[Completion((CALL,), "tool_calls", Usage(10, 5)), Completion((IT_IS,), "stop", Usage(20, 4))]
    )
    chat = service(store, model)
    question = message("user", "Weather in Oslo?")
    asking = TurnInput((question,), "c1", tools=(WEATHER,), tool_choice=NamedFunction("weather"))
    if streamed:
        events = await all_events((await chat.turns.stream("app", asking)).events)
        assert events == [
            ItemStarted(replace(CALL, arguments="")),
            ArgumentsDelta(CALL.id, CALL.arguments),
            Done("tool_calls", Usage(10, 5), (CALL,), store.appended[0][1].created_at),
        ]
    else:
        answer = await chat.turns.reply("app", asking)
        assert answer.outputs == (CALL,) and answer.text == "" and answer.finish_reason == "tool_calls"
    [(number, called)] = store.appended
    assert (number, called.inputs, called.outputs, called.finish_reason) == (1, (question,), (CALL,), "tool_calls")
    [first] = model.requests
    assert first.tools == (WEATHER,) and first.tool_choice == NamedFunction("weather")
    assert list(first.items) == [question]

    store.turns = [as_stored(number, called)]
    result = function_call_output(CALL.call_id, "-3 C")
    answer = await chat.turns.reply("app", TurnInput((result,), "c1", tools=(WEATHER,), tool_choice="auto"))
    second = model.requests[1]
    assert list(second.items) == [question, CALL, result]
    assert second.tools == (WEATHER,) and second.tool_choice == "auto"
    assert answer.text == "It is -3 C."
    assert [(n, t.inputs, t.outputs) for n, t in store.appended[1:]] == [(2, (result,), (IT_IS,))]


async def test_a_window_trim_between_a_call_and_its_output_drops_both():
    question = message("user", "Weather in Oslo?")
    result = function_call_output(CALL.call_id, "-3 C")
    called = Turn(1, (question,), (CALL,), CREATED, "tool_calls", Usage(10, 5))
    answered = Turn(2, (result,), (IT_IS,), CREATED, "stop", Usage(20, 4))
    store = FakeStore(turns=[called, answered])
    # Room for the newest turn only: the call is trimmed with its turn, so its output must go too.
    budget = turn_cost(answered, estimate_tokens)
    model = FakeModel()
    thanks = message("user", "Thanks")
    await service(store, model, history_token_budget=budget).turns.reply("app", TurnInput((thanks,), "c1"))
    assert store.budgets == [budget] and store.windows == [[2]]
    assert list(model.requests[0].items) == [IT_IS, thanks]
    [(_, stored)] = store.appended
    assert stored.inputs == (thanks,) and stored.outputs == (HELLO,)


# -- how a stream ends ---------------------------------------------------------------------


async def test_a_stream_cut_by_shut_down_ends_with_failed_ends_its_span_stores_nothing_and_says_so(caplog):
    store = FakeStore()
    tracer = FakeTracer()
    never = asyncio.Event()  # the model never finishes
    chat = service(store, FakeModel(gate=never), tracer=tracer, shutdown_grace_seconds=0.01)
    streamed = await chat.turns.stream("app", turn())
    events = streamed.events
    assert await anext(events) == started(HELLO)
    assert await anext(events) == TextDelta(HELLO.id, "Hel")
    with caplog.at_level(logging.WARNING, logger="chat.engine.streams"):
        await chat.aclose()
    [last] = await all_events(events)
    assert isinstance(last, Failed)
    assert (last.error.code, status_of(last.error)) == ("server_shutting_down", 503)
    [span] = tracer.spans
    assert span.streamed and span.endings == ["failed: CancelledError"]
    assert store.appended == [] and store.activity == []
    key = Conversation("app", "c1").key[:16]
    assert [r.levelname for r in caplog.records if "cut" in r.getMessage() and key in r.getMessage()] == ["WARNING"]


async def test_a_model_stream_that_ends_without_finishing_ends_with_failed():
    store = FakeStore()
    tracer = FakeTracer()
    chat = service(store, FakeModel(unfinished=True), tracer=tracer)
    streamed = await chat.turns.stream("app", turn())
    events = await all_events(streamed.events)
    assert events[:-1] == [started(HELLO), TextDelta(HELLO.id, "Hel"), TextDelta(HELLO.id, "lo")]
    assert isinstance(events[-1], Failed) and events[-1].error.code == "internal_error"
    [span] = tracer.spans
    assert span.endings == ["failed: RuntimeError"]
    assert store.appended == [] and store.activity == []


# -- responses of the OpenAI-compatible door ---------------------------------------------------


def response_turn(content="hi", **options: Any) -> TurnInput:
    options.setdefault("conversation_id", None)
    return TurnInput((message("user", content),), response="{}", **options)


def stored_response(conversation_id: str, number: int) -> StoredResponse:
    turn = Turn(number, (message("user", "q"),), (message("assistant", "a"),), "2026-12-01T00:00:00.000000Z")
    return StoredResponse(ResponseRecord("resp_x", "{}"), conversation_id, turn)


async def test_a_response_in_no_conversation_starts_a_chain_and_keeps_its_record():
    store, model = FakeStore(), FakeModel()
    answer = await service(store, model).turns.reply("ada", response_turn())
    assert is_chain(answer.conversation_id)
    # Its ID names the chain's partition, so that a later request finds it.
    assert response_partition(answer.response_id) == Conversation("ada", answer.conversation_id).key
    [(_, stored)] = store.appended
    assert stored.response == ResponseRecord(answer.response_id, "{}")
    assert stored.continues is None
    # A chain is no conversation: it is never listed.
    assert store.activity == []


async def test_a_response_continues_its_previous_responses_chain_from_that_turn():
    store, model = FakeStore(), FakeModel()
    chain = "\x1fabc"
    store.responses["resp_prev"] = stored_response(chain, 3)
    answer = await service(store, model).turns.reply("ada", response_turn(previous_response_id="resp_prev"))
    assert answer.conversation_id == chain
    assert store.chain_reads == [(TurnRef(chain, 3), 1000)]
    [(_, stored)] = store.appended
    assert stored.continues == TurnRef(chain, 3)


async def test_a_response_after_a_conversations_response_branches_into_a_new_chain():
    store, model = FakeStore(), FakeModel()
    store.responses["resp_prev"] = stored_response("c1", 2)
    answer = await service(store, model).turns.reply("ada", response_turn(previous_response_id="resp_prev"))
    assert is_chain(answer.conversation_id)
    [(_, stored)] = store.appended
    assert stored.continues == TurnRef("c1", 2)


async def test_an_unknown_previous_response_is_a_404_and_asks_nothing():
    store, model = FakeStore(), FakeModel()
    with pytest.raises(Exception) as raised:
        await service(store, model).turns.reply("ada", response_turn(previous_response_id="resp_gone"))
    assert status_of(raised.value) == 404
    assert raised.value.code == "previous_response_not_found"
    assert model.requests == [] and store.appended == []


async def test_a_response_not_to_be_stored_writes_nothing_but_is_charged():
    store, model = FakeStore(), FakeModel()
    answer = await service(store, model, daily_token_quota=10_000).turns.reply("ada", response_turn(store=False))
    assert answer.text == HELLO.text
    assert store.appended == [] and store.activity == []
    # Its reservation was settled to what the model reported.
    assert answer.usage is not None
    assert store.used_tokens == answer.usage.total_tokens
    assert response_partition(answer.response_id) is None


async def test_a_response_in_a_conversation_that_does_not_exist_is_a_404():
    store, model = FakeStore(), FakeModel()
    with pytest.raises(ConversationNotFound):
        await service(store, model).turns.reply("ada", response_turn(conversation_id="c1", must_exist=True))
    assert model.requests == []


async def test_instructions_and_sampling_options_reach_the_model():
    store, model = FakeStore(), FakeModel()
    request = response_turn(instructions="Be brief.", temperature=0.5, top_p=0.9, max_output_tokens=50, user="u1")
    await service(store, model, max_answer_tokens=100).turns.reply("ada", request)
    [sent] = model.requests
    # The server's system prompt stays whole; the caller's instructions go beside it.
    assert (sent.system_prompt, sent.instructions) == ("sys", "Be brief.")
    assert (sent.temperature, sent.top_p, sent.user) == (0.5, 0.9, "u1")
    # The lower of the server's cap and the request's.
    assert sent.max_output_tokens == 50


async def test_with_truncation_disabled_nothing_is_left_out_and_a_refusal_is_a_400():
    store, model = FakeStore(), FakeModel()
    store.turns = [stored_turn(1, "old", "a1"), stored_turn(2, "older", "a2")]
    model.failures = [ContextTooLong("too long")]
    with pytest.raises(ContextTooLong) as raised:
        await service(store, model).turns.reply("ada", response_turn(conversation_id="c1", truncate=False))
    assert "truncation is disabled" in raised.value.message
    # One call, with everything: no second try with half the window.
    assert len(model.requests) == 1 and len(model.requests[0].items) == 5
    assert store.budgets == [turn_module.UNLIMITED]


async def test_an_idempotency_key_needs_a_stored_response():
    store, model = FakeStore(), FakeModel()
    with pytest.raises(Exception) as raised:
        await service(store, model).turns.reply("ada", response_turn(store=False, idempotency_key="k"))
    assert status_of(raised.value) == 400
    assert model.requests == []


async def test_conversation_metadata_is_kept_and_updated():
    store, model = FakeStore(), FakeModel()
    chat = service(store, model)
    created = await chat.writes.create("ada", (message("user", "hi"),), {"topic": "a"})
    assert created.id.startswith("conv_") and created.metadata == {"topic": "a"}
    # Its first items were stored with it, and listed.
    assert [number for number, _ in store.appended] == [1]
    assert store.activity
    updated = await chat.writes.update_metadata("ada", created.id, {"topic": "b"})
    assert updated.metadata == {"topic": "b"} and updated.created_at == created.created_at
