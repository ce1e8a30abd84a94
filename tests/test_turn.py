"""A turn through its seams: the prompt, races with other turns and deletes, lost answers,
idempotency, the model's failures and function tools; fakes of the engine's own protocols, no I/O."""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import replace

import pytest

from chat.engine.commit import MAX_COMMIT_ATTEMPTS
from chat.engine.errors import (
    ContextTooLong,
    ConversationBusy,
    ConversationNotFound,
    IdempotencyKeyReused,
    ModelUnavailable,
)
from chat.engine.history import Conversation, request_hash
from chat.engine.ids import item_partition
from chat.engine.items import (
    FilePart,
    FunctionCall,
    ImagePart,
    Message,
    Turn,
    Usage,
    function_call_output,
    message,
    stored_in,
)
from chat.engine.model import ArgumentsDelta, Completion, FunctionTool, ItemStarted, Model, NamedFunction, TextDelta
from chat.engine.ports import (
    ConversationIndex,
    DayCount,
    HistoryWindow,
    ItemReads,
    TokenLedger,
    Tracer,
    TurnDeletes,
    TurnSpan,
    TurnWrites,
)
from chat.engine.tokens import estimate_tokens
from chat.engine.turns import Done, Failed, ModelOptions, TurnInput
from chat.engine.window import turn_cost
from tests.fakes.engine import (
    CREATED,
    HELLO,
    FakeModel,
    FakeSpan,
    FakeTracer,
    all_events,
    no_reserve_backoff,  # noqa: F401 (a fixture: pytestmark uses it)
    prompt,
    service,
    started,
    stored_turn,
    turn,
)
from tests.fakes.store import FakeDayCount, FakeStore, as_stored

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_reserve_backoff")]


@pytest.mark.parametrize(
    ("fake", "protocol"),
    [
        (FakeStore(), HistoryWindow),
        (FakeStore(), TurnWrites),
        (FakeStore(), ItemReads),
        (FakeStore(), TurnDeletes),
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


def test_a_retry_must_send_the_same_images_and_files_and_text_alone_hashes_as_it_always_did():
    png, gif = "data:image/png;base64,AAAA", "data:image/gif;base64,AAAA"
    looked = (message("user", "", parts=("Look", ImagePart(png))),)
    assert request_hash(looked) == request_hash((message("user", "", parts=("Look", ImagePart(png))),))
    for other in (
        message("user", "", parts=("Look", ImagePart(gif))),
        message("user", "", parts=("Look", ImagePart(png, "low"))),
        message("user", "", parts=("Look", FilePart(png, "a.png"))),
        message("user", "Look"),
    ):
        assert request_hash((other,)) != request_hash(looked)
    output = function_call_output("call_1", "", parts=(ImagePart(png),))
    assert request_hash((output,)) != request_hash((function_call_output("call_1", "", parts=(ImagePart(gif),)),))
    # The hash of a text item is made of what it always was: stored hashes still match their retries.
    assert request_hash((message("user", "hi"),)) == hashlib.sha256(b'[["message", "user", "hi"]]').hexdigest()


async def test_a_new_conversation_of_a_retried_request_gets_the_same_id():
    chat = service(FakeStore(), FakeModel())
    first = await chat.turns.reply("app", turn(conversation_id=None, key="k1"))
    again = await chat.turns.reply("app", turn(conversation_id=None, key="k1"))
    other_owner = await chat.turns.reply("someone", turn(conversation_id=None, key="k1"))
    fresh = await chat.turns.reply("app", turn(conversation_id=None))
    assert first.conversation_id == again.conversation_id != other_owner.conversation_id
    assert fresh.conversation_id not in (first.conversation_id, other_owner.conversation_id)


# -- function tools ------------------------------------------------------------------------

WEATHER = FunctionTool(
    "weather",
    "The weather in a city now.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CALL = FunctionCall("fc_oslo", "call_oslo", "weather", '{"city": "Oslo"}')


def in_c1(item):
    """An input as the engine stores it in conversation c1: under an ID that names c1 (the engine
    gives an input one when the turn is placed; one that has it already keeps it)."""
    stored = stored_in(item, Conversation("app", "c1").key)
    assert item_partition(stored.id) == Conversation("app", "c1").key
    return stored


IT_IS = Message("msg_it_is", "assistant", "It is -3 C.")


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_function_call_is_stored_and_goes_back_to_the_model_with_its_output(streamed):
    store = FakeStore()
    model = FakeModel(
        answers=[Completion((CALL,), "tool_calls", Usage(10, 5)), Completion((IT_IS,), "stop", Usage(20, 4))]
    )
    chat = service(store, model)
    question = in_c1(message("user", "Weather in Oslo?"))
    asking = TurnInput((question,), "c1", options=ModelOptions(tools=(WEATHER,), tool_choice=NamedFunction("weather")))
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
    result = in_c1(function_call_output(CALL.call_id, "-3 C"))
    answer = await chat.turns.reply(
        "app", TurnInput((result,), "c1", options=ModelOptions(tools=(WEATHER,), tool_choice="auto"))
    )
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
    thanks = in_c1(message("user", "Thanks"))
    await service(store, model, history_token_budget=budget).turns.reply("app", TurnInput((thanks,), "c1"))
    assert store.budgets == [budget] and store.windows == [[2]]
    assert list(model.requests[0].items) == [IT_IS, thanks]
    [(_, stored)] = store.appended
    assert stored.inputs == (thanks,) and stored.outputs == (HELLO,)


async def test_a_turns_inputs_are_stored_under_ids_that_name_its_conversation():
    store = FakeStore()
    minted_before = message("user", "hello")  # as a door mints it, before the turn is placed
    await service(store, FakeModel()).turns.reply("app", TurnInput((minted_before,), "c1"))
    [(_, stored)] = store.appended
    [stored_input] = stored.inputs
    assert item_partition(stored_input.id) == Conversation("app", "c1").key != item_partition(minted_before.id)
    assert (stored_input.role, stored_input.text) == ("user", "hello")
