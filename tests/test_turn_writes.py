"""A turn's write and the owner's list beside it: ahead of a first turn, beside a continuing one,
nothing of a turn too large to store."""

from __future__ import annotations

import asyncio

import pytest

from chat.engine.errors import AnswerTooLarge, StorageUnavailable
from chat.engine.items import Usage, message
from chat.engine.model import Completion
from tests.fakes.engine import (
    FakeModel,
    no_reserve_backoff,  # noqa: F401 (a fixture: pytestmark uses it)
    service,
    stored_turn,
    turn,
)
from tests.fakes.store import FakeStore

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_reserve_backoff")]


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
