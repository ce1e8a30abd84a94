"""The daily quota's ledger through a turn: reserved before the model, settled after, refused
when it has no room, refunded when the model fails."""

from __future__ import annotations

import pytest

from chat.bootstrap import Policy, compose
from chat.engine.errors import ModelUnavailable, RateLimited, StorageUnavailable
from chat.engine.quota import BUSY_RETRY_AFTER_SECONDS
from chat.engine.tokens import estimate_tokens
from chat.engine.turns import Failed
from tests.fakes.engine import (
    CAP,
    RESERVED,
    FakeModel,
    all_events,
    no_reserve_backoff,  # noqa: F401 (a fixture: pytestmark uses it)
    service,
    turn,
)
from tests.fakes.store import FakeStore

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_reserve_backoff")]


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
