"""Responses of the OpenAI-compatible door through the turn: chains, branches, store false,
instructions and sampling options, truncation."""

from __future__ import annotations

from typing import Any

import pytest

from chat.engine import reading as reading_module
from chat.engine.errors import ContextTooLong, ConversationNotFound
from chat.engine.history import Conversation, ResponseRecord, StoredResponse, is_chain, response_partition
from chat.engine.items import Turn, TurnRef, message
from chat.engine.turns import ModelOptions, TurnInput
from chat.web.errors import status_of
from tests.fakes.engine import (
    HELLO,
    FakeModel,
    no_reserve_backoff,  # noqa: F401 (a fixture: pytestmark uses it)
    service,
    stored_turn,
)
from tests.fakes.store import FakeStore

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_reserve_backoff")]


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
    options = ModelOptions(instructions="Be brief.", temperature=0.5, top_p=0.9, max_output_tokens=50, user="u1")
    request = response_turn(options=options)
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
    assert store.budgets == [reading_module.UNLIMITED]


async def test_an_idempotency_key_needs_a_stored_response():
    store, model = FakeStore(), FakeModel()
    with pytest.raises(Exception) as raised:
        await service(store, model).turns.reply("ada", response_turn(store=False, idempotency_key="k"))
    assert status_of(raised.value) == 400
    assert model.requests == []
