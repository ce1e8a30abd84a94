"""The service through its seams: a fake store and a fake model of our own, no I/O."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from chat.engine import service as service_module
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
)
from chat.engine.service import BUSY_RETRY_AFTER_SECONDS, MAX_COMMIT_ATTEMPTS, ChatService, Done, Failed
from chat.engine.tokens import estimate_tokens
from chat.model_client import Completion, Finished, TextDelta
from chat.storage.messages import Head, History, Message, Turn, Usage, request_hash
from chat.storage.quota import DayCount
from chat.web.chat_protocol import TurnInput

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def no_reserve_backoff(monkeypatch):
    """Turns kept out by turns in flight try again at once here: the fakes need no waiting."""
    monkeypatch.setattr(service_module, "RESERVE_BACKOFF_SECONDS", 0)


def stored_turn(number: int, user: str, answer: str) -> Turn:
    return Turn(
        number=number,
        user=Message(number, "user", user, "2026-01-01T00:00:00Z"),
        assistant=Message(number, "assistant", answer, "2026-01-01T00:00:00Z", "stop", Usage(1, 1)),
    )


@dataclass
class FakeStore:
    turns: list[Turn] = field(default_factory=list)
    conflicts: int = 0  # how many appends fail as if a concurrent turn took the number
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
    fail_reservation: bool = False
    appended: list[tuple[int, object]] = field(default_factory=list)
    activity: list[int] = field(default_factory=list)
    listed_floors: list[int] = field(default_factory=list)
    charged: list[int] = field(default_factory=list)

    async def read_history(self, conversation, budget, estimate, idempotency_key=None):
        latest = self.turns[-1].number if self.turns else self.floor
        return History(list(self.turns), Head(latest, self.floor, etag="1"), self.replay, self.replay_hash)

    async def read_head(self, conversation):
        return Head(self.latest_after_conflict, self.floor_after_conflict, etag="2")

    async def find_idempotent(self, conversation, key, floor=0):
        return None

    def check_storable(self, conversation, turn):
        if len(turn.answer) > 1000:
            raise AnswerTooLarge("The answer is too large to store with this message.")

    async def append_turn(self, conversation, head, turn):
        number = head.latest_turn + 1
        if self.conflicts:
            self.conflicts -= 1
            self.latest_after_conflict = max(self.latest_after_conflict, number)
            raise TurnConflict()
        self.appended.append((number, turn))
        return number

    async def record_activity(self, conversation, *, floor, first_message, at, message_count, retitle=False):
        if self.fail_side_writes:
            raise StorageUnavailable("down")
        self.activity.append(message_count)
        self.listed_floors.append(floor)
        return True

    async def read(self, owner, day):
        return DayCount(self.used_tokens, self.held_tokens, {})

    async def add(self, owner, day, tokens, *, held=0, seen=None):
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
    model: str = "fake"
    failures: list[Exception] = field(default_factory=list)
    prompts: list[list[dict]] = field(default_factory=list)
    limits: list[int | None] = field(default_factory=list)
    pieces: tuple[str, ...] = ("Hel", "lo")
    gate: asyncio.Event | None = None  # streaming waits on it after the first piece
    cut: ModelUnavailable | None = None  # the stream fails with it after its pieces

    async def complete(self, messages, max_answer_tokens=None):
        self.prompts.append(messages)
        self.limits.append(max_answer_tokens)
        if self.failures:
            raise self.failures.pop(0)
        return Completion("Hello", "stop", Usage(10, 2))

    async def stream(self, messages, max_answer_tokens=None):
        self.prompts.append(messages)
        self.limits.append(max_answer_tokens)
        if self.failures:
            raise self.failures.pop(0)
        return self._events()

    async def _events(self):
        for index, piece in enumerate(self.pieces):
            yield TextDelta(piece)
            if index == 0 and self.gate is not None:
                await self.gate.wait()
        if self.cut is not None:
            raise self.cut
        yield Finished("stop", Usage(10, 2))


def service(store, model, **options) -> ChatService:
    # The fake store plays the history, the conversation list and the token counts.
    if options.get("daily_token_quota"):
        options.setdefault("max_answer_tokens", CAP)
    return ChatService(store, store, store, model, system_prompt="sys", history_token_budget=1000, **options)


CAP = 20
# What a turn "hi" reserves with no history: the estimates of "sys" and "hi", and the answer cap.
RESERVED = estimate_tokens("sys") + estimate_tokens("hi") + CAP


def turn(content="hi", conversation_id="c1", key=None) -> TurnInput:
    return TurnInput(content=content, conversation_id=conversation_id, idempotency_key=key)


async def test_prompt_is_system_history_then_the_new_message():
    store = FakeStore(turns=[stored_turn(1, "a", "b")])
    model = FakeModel()
    answer = await service(store, model).reply("app", turn("c"))
    assert model.prompts == [
        [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
        ]
    ]
    assert answer.content == "Hello" and answer.conversation_id == "c1"
    assert [number for number, _ in store.appended] == [2]
    assert store.activity == [4]


async def test_a_turn_that_loses_the_race_is_renumbered_and_the_count_follows():
    store = FakeStore(turns=[stored_turn(1, "a", "b")], conflicts=2)
    await service(store, FakeModel()).reply("app", turn())
    assert [number for number, _ in store.appended] == [4]
    assert store.activity == [4, 8]


async def test_a_turn_that_loses_to_a_delete_is_not_found_stores_nothing_and_is_not_listed_after():
    store = FakeStore(turns=[stored_turn(1, "a", "b")], conflicts=1, latest_after_conflict=3, floor_after_conflict=3)
    with pytest.raises(ConversationNotFound) as raised:
        await service(store, FakeModel()).reply("app", turn())
    assert "deleted" in raised.value.message
    assert store.appended == []
    # Only the update beside the transaction ran, under the floor the turn read.
    assert store.activity == [4] and store.listed_floors == [0]


async def test_a_stream_that_loses_to_a_delete_ends_with_not_found():
    store = FakeStore(conflicts=1, latest_after_conflict=1, floor_after_conflict=2)
    streamed = await service(store, FakeModel()).stream("app", turn())
    events = [event async for event in streamed.events]
    assert events[:2] == [TextDelta("Hel"), TextDelta("lo")]
    assert isinstance(events[-1], Failed) and events[-1].error.code == "conversation_not_found"
    assert store.appended == [] and store.activity == []


async def test_a_conversation_started_afresh_after_a_delete_counts_from_its_floor():
    store = FakeStore(floor=7)
    await service(store, FakeModel()).reply("app", turn())
    assert [number for number, _ in store.appended] == [8]
    assert store.activity == [2] and store.listed_floors == [7]
    store.turns = [stored_turn(8, "hi", "Hello")]
    await service(store, FakeModel()).reply("app", turn("again"))
    assert [number for number, _ in store.appended] == [8, 9]
    assert store.activity == [2, 4] and store.listed_floors == [7, 7]


async def test_endless_conflicts_are_a_busy_conversation_and_store_nothing():
    store = FakeStore(conflicts=MAX_COMMIT_ATTEMPTS)
    with pytest.raises(ConversationBusy):
        await service(store, FakeModel()).reply("app", turn())
    assert store.appended == []


async def test_context_length_exceeded_halves_the_window_once():
    store = FakeStore(turns=[stored_turn(n, f"u{n}", f"a{n}") for n in range(1, 6)])
    model = FakeModel(failures=[ContextTooLong("too long")])
    await service(store, model).reply("app", turn())
    assert [len(p) for p in model.prompts] == [12, 6]
    assert model.prompts[1][1]["content"] == "u4"


async def test_context_length_exceeded_with_no_history_left_is_the_clients_error():
    model = FakeModel(failures=[ContextTooLong("too long")])
    with pytest.raises(ContextTooLong):
        await service(FakeStore(), model).reply("app", turn())


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_failed_model_call_stores_nothing(streamed):
    store = FakeStore()
    model = FakeModel(failures=[ModelUnavailable("down")])
    chat = service(store, model)
    with pytest.raises(ModelUnavailable):
        if streamed:
            await chat.stream("app", turn())
        else:
            await chat.reply("app", turn())
    assert store.appended == [] and store.activity == []


async def test_an_idempotent_retry_replays_without_calling_the_model():
    store = FakeStore(replay=stored_turn(3, "hi", "first answer"), replay_hash=request_hash("hi"))
    model = FakeModel()
    answer = await service(store, model).reply("app", turn("hi", key="k"))
    assert answer.replayed and answer.content == "first answer"
    assert model.prompts == [] and store.appended == []


async def test_an_idempotency_key_reused_for_another_message_is_refused():
    store = FakeStore(replay=stored_turn(3, "hi", "first answer"), replay_hash=request_hash("hi"))
    with pytest.raises(IdempotencyKeyReused):
        await service(store, FakeModel()).reply("app", turn("something else", key="k"))


async def test_a_new_conversation_of_a_retried_request_gets_the_same_id():
    chat = service(FakeStore(), FakeModel())
    first = await chat.reply("app", turn(conversation_id=None, key="k1"))
    again = await chat.reply("app", turn(conversation_id=None, key="k1"))
    other_owner = await chat.reply("someone", turn(conversation_id=None, key="k1"))
    fresh = await chat.reply("app", turn(conversation_id=None))
    assert first.conversation_id == again.conversation_id != other_owner.conversation_id
    assert fresh.conversation_id not in (first.conversation_id, other_owner.conversation_id)


async def test_a_stream_left_by_its_client_is_still_stored():
    store = FakeStore()
    gate = asyncio.Event()
    chat = service(store, FakeModel(gate=gate))
    streamed = await chat.stream("app", turn())
    events = streamed.events
    assert await anext(events) == TextDelta("Hel")
    await events.aclose()  # the client went away
    gate.set()
    await chat.aclose()
    [(_, stored)] = store.appended
    assert stored.answer == "Hello" and stored.finish_reason == "stop"


async def test_a_stream_ends_with_done_after_the_turn_is_stored():
    store = FakeStore()
    streamed = await service(store, FakeModel()).stream("app", turn())
    events = [event async for event in streamed.events]
    assert events == [TextDelta("Hel"), TextDelta("lo"), Done("stop", Usage(10, 2))]
    assert len(store.appended) == 1


async def test_a_storage_failure_at_the_end_of_a_stream_is_its_last_event():
    store = FakeStore()

    async def refuse(*args):
        raise StorageUnavailable("Storage is unreachable; try again.")

    store.append_turn = refuse
    streamed = await service(store, FakeModel()).stream("app", turn())
    events = [event async for event in streamed.events]
    assert isinstance(events[-1], Failed) and events[-1].error.code == "storage_unavailable"


async def test_failing_side_writes_do_not_fail_a_stored_turn():
    store = FakeStore(fail_side_writes=True)
    answer = await service(store, FakeModel(), daily_token_quota=100).reply("app", turn())
    assert answer.content == "Hello" and len(store.appended) == 1


async def test_the_quota_is_checked_before_the_model_and_charged_after():
    store = FakeStore(used_tokens=100 - RESERVED)
    model = FakeModel()
    chat = service(store, model, daily_token_quota=100)
    await chat.reply("app", turn())
    # Reserved before the model (the prompt's estimate and the cap), settled to the usage after.
    assert store.charged == [RESERVED, 12 - RESERVED]
    assert (store.used_tokens, store.held_tokens) == (100 - RESERVED + 12, 0)
    store.used_tokens = 100
    with pytest.raises(RateLimited) as refused:
        await chat.reply("app", turn())
    assert refused.value.code == "quota_exceeded" and 0 < refused.value.retry_after <= 86_400
    assert len(model.prompts) == 1


@pytest.mark.parametrize("streamed", [False, True])
async def test_the_answer_cap_goes_to_the_model_with_a_quota(streamed):
    model = FakeModel()
    chat = service(FakeStore(), model, daily_token_quota=1000)
    if streamed:
        [_ async for _ in (await chat.stream("app", turn())).events]
    else:
        await chat.reply("app", turn())
    assert model.limits == [CAP]


async def test_a_turn_whose_reservation_does_not_fit_is_refused_before_the_model_and_writes_nothing():
    store = FakeStore(used_tokens=101 - RESERVED)
    model = FakeModel()
    with pytest.raises(RateLimited) as refused:
        await service(store, model, daily_token_quota=100).reply("app", turn())
    assert refused.value.code == "quota_exceeded" and refused.value.retry_after > 0
    assert model.prompts == [] and store.charged == [] and store.appended == []


async def test_a_turn_larger_than_the_whole_quota_says_so():
    with pytest.raises(RateLimited) as refused:
        await service(FakeStore(), FakeModel(), daily_token_quota=100).reply("app", turn("x" * 300))
    assert "more than the daily quota of 100" in refused.value.message


async def test_a_turn_that_concurrent_turns_leave_no_room_for_is_refunded_and_refused_for_a_moment():
    # Both fit alone; the other turn's reservation lands between this one's addition and its read,
    # and that turn is still in flight whenever this one looks again.
    store = FakeStore(arriving=100 - RESERVED + 1)
    model = FakeModel()
    with pytest.raises(RateLimited) as refused:
        await service(store, model, daily_token_quota=100).reply("app", turn())
    assert refused.value.code == "quota_exceeded" and refused.value.retry_after == BUSY_RETRY_AFTER_SECONDS
    assert "in progress" in refused.value.message
    assert store.charged == [RESERVED, -RESERVED] and model.prompts == [] and store.appended == []
    assert (store.used_tokens, store.held_tokens) == (100 - RESERVED + 1,) * 2


async def test_a_turn_kept_out_by_a_turn_in_flight_gets_in_once_that_one_is_done():
    store = FakeStore(arriving=100 - RESERVED + 1, leaves=True)
    answer = await service(store, FakeModel(), daily_token_quota=100).reply("app", turn())
    assert answer.content == "Hello"
    assert store.charged == [RESERVED, -RESERVED, RESERVED, 12 - RESERVED]
    assert (store.used_tokens, store.held_tokens) == (12, 0)


async def test_a_turn_kept_out_by_settled_turns_is_refused_until_midnight():
    store = FakeStore(used_tokens=100 - RESERVED + 1, held_tokens=0)
    with pytest.raises(RateLimited) as refused:
        await service(store, FakeModel(), daily_token_quota=100).reply("app", turn())
    assert "renews at midnight UTC" in refused.value.message and store.charged == []


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_failed_model_call_refunds_its_reservation(streamed):
    store = FakeStore()
    chat = service(store, FakeModel(failures=[ModelUnavailable("down")]), daily_token_quota=100)
    with pytest.raises(ModelUnavailable):
        await (chat.stream if streamed else chat.reply)("app", turn())
    assert store.charged == [RESERVED, -RESERVED] and (store.used_tokens, store.held_tokens) == (0, 0)


async def test_a_stream_cut_mid_answer_is_charged_its_prompt_and_the_text_it_sent():
    store = FakeStore()
    model = FakeModel(cut=ModelUnavailable("cut", code="model_stream_interrupted"))
    streamed = await service(store, model, daily_token_quota=100).stream("app", turn())
    events = [event async for event in streamed.events]
    assert isinstance(events[-1], Failed) and store.appended == []
    assert store.used_tokens == estimate_tokens("sys") + estimate_tokens("hi") + estimate_tokens("Hello")
    assert store.held_tokens == 0


async def test_a_reservation_that_cannot_be_written_refuses_the_turn_before_the_model():
    store = FakeStore(fail_reservation=True)
    model = FakeModel()
    with pytest.raises(StorageUnavailable):
        await service(store, model, daily_token_quota=100).reply("app", turn())
    assert model.prompts == [] and store.appended == []


async def test_a_settle_that_fails_keeps_the_reservation_and_says_so(caplog):
    store = FakeStore(fail_side_writes=True)
    answer = await service(store, FakeModel(), daily_token_quota=100).reply("app", turn())
    assert answer.content == "Hello" and len(store.appended) == 1
    # The whole reservation stays counted: more than the turn used, never less.
    assert (store.used_tokens, store.held_tokens) == (RESERVED, RESERVED)
    assert any("not settled" in record.getMessage() and record.levelname == "WARNING" for record in caplog.records)


async def test_a_turn_the_model_answers_is_charged_even_when_storing_it_fails():
    store = FakeStore()

    async def refuse(*args):
        raise StorageUnavailable("Storage is unreachable; try again.")

    store.append_turn = refuse
    with pytest.raises(StorageUnavailable):
        await service(store, FakeModel(), daily_token_quota=100).reply("app", turn())
    assert store.used_tokens == 12


def test_a_quota_needs_an_answer_cap():
    with pytest.raises(ValueError, match="max_answer_tokens"):
        ChatService(
            FakeStore(),
            FakeStore(),
            FakeStore(),
            FakeModel(),
            system_prompt="s",
            history_token_budget=1,
            daily_token_quota=100,
        )


async def test_a_turn_too_large_to_store_writes_nothing_not_even_the_list_entry():
    store = FakeStore()
    model = FakeModel()
    model.complete = lambda messages, max_answer_tokens=None: _completion("x" * 1001)
    with pytest.raises(AnswerTooLarge):
        await service(store, model).reply("app", turn())
    assert store.appended == [] and store.activity == []


async def _completion(text: str) -> Completion:
    return Completion(text, "stop", Usage(1, 1))


async def test_a_new_conversation_whose_first_turn_fails_to_store_is_not_listed():
    store = FakeStore()

    async def refuse(*args):
        raise StorageUnavailable("Storage is unreachable; try again.")

    store.append_turn = refuse
    with pytest.raises(StorageUnavailable):
        await service(store, FakeModel()).reply("app", turn())
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
    await service(store, FakeModel()).reply("app", turn())
    assert store.activity == [4] and len(store.appended) == 1
