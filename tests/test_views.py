"""Reads and deletes: the owner's list hides and repairs unconfirmed entries, a delete marks the
entry before it raises the floor; the OpenAI door's conversation metadata."""

from __future__ import annotations

import time

import pytest

from chat.engine import views as views_module
from chat.engine.history import ConversationSummary, Head, ResponseRecord, StoredResponse
from chat.engine.items import message
from tests.fakes.engine import (
    FakeModel,
    no_reserve_backoff,  # noqa: F401 (a fixture: pytestmark uses it)
    service,
    stored_turn,
)
from tests.fakes.store import FakeStore

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_reserve_backoff")]


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


async def test_a_response_stored_between_the_two_reads_of_a_get_is_found():
    """A GET reads the stored response, then its in-progress row; the turn's transaction writes the
    one and closes the other together, so a GET that missed the first finds the second closed and
    reads the first again."""
    stored = StoredResponse(ResponseRecord("resp_x", "{}"), "c1", stored_turn(1, "a", "b"))

    class StoredMeanwhile(FakeStore):
        reads = 0

        async def read_response(self, owner, response_id):
            self.reads += 1
            return stored if self.reads > 1 else None

    store = StoredMeanwhile()
    assert await service(store, FakeModel()).views.response_or_run("app", "resp_x") == stored
    assert store.reads == 2
