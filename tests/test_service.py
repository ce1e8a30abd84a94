"""The service through its seams: a fake store and a fake model of our own, no I/O."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from chat.errors import (
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
from chat.model_client import Completion, Finished, TextDelta
from chat.protocol import TurnInput
from chat.service import MAX_COMMIT_ATTEMPTS, ChatService, Done, Failed
from chat.store import Head, History, Message, Turn, Usage, request_hash

pytestmark = pytest.mark.anyio


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
    used_tokens: int = 0
    fail_side_writes: bool = False
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

    async def tokens_used(self, owner, day):
        return self.used_tokens

    async def add_tokens(self, owner, day, tokens):
        if self.fail_side_writes:
            raise StorageUnavailable("down")
        self.charged.append(tokens)


@dataclass
class FakeModel:
    model: str = "fake"
    failures: list[Exception] = field(default_factory=list)
    prompts: list[list[dict]] = field(default_factory=list)
    pieces: tuple[str, ...] = ("Hel", "lo")
    gate: asyncio.Event | None = None  # streaming waits on it after the first piece

    async def complete(self, messages):
        self.prompts.append(messages)
        if self.failures:
            raise self.failures.pop(0)
        return Completion("Hello", "stop", Usage(10, 2))

    async def stream(self, messages):
        self.prompts.append(messages)
        if self.failures:
            raise self.failures.pop(0)
        return self._events()

    async def _events(self):
        for index, piece in enumerate(self.pieces):
            yield TextDelta(piece)
            if index == 0 and self.gate is not None:
                await self.gate.wait()
        yield Finished("stop", Usage(10, 2))


def service(store, model, **options) -> ChatService:
    # The fake store plays the history, the conversation list and the token counts.
    return ChatService(store, store, store, model, system_prompt="sys", history_token_budget=1000, **options)


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
    store = FakeStore(used_tokens=99)
    model = FakeModel()
    chat = service(store, model, daily_token_quota=100)
    await chat.reply("app", turn())
    assert store.charged == [12]
    store.used_tokens = 100
    with pytest.raises(RateLimited) as refused:
        await chat.reply("app", turn())
    assert refused.value.code == "quota_exceeded" and 0 < refused.value.retry_after <= 86_400
    assert len(model.prompts) == 1


async def test_a_turn_too_large_to_store_writes_nothing_not_even_the_list_entry():
    store = FakeStore()
    model = FakeModel()
    model.complete = lambda messages: _completion("x" * 1001)
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
