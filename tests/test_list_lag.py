"""The list lags its conversations and is put right as it is read (chat/storage/conversations.py
and list_pages.py), in-process against Azurite with the messages table's heads: a continuing turn
this worker listed lately writes nothing to the list, yet every page shows each conversation's
newest time and count and orders by them, across pages, with nothing shown twice or left out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables.aio import TableClient

from chat.engine.history import Conversation
from chat.storage import keys
from chat.storage.activity import LIST_LAG_SECONDS
from chat.storage.conversations import ConversationIndex
from chat.storage.messages import TurnStore
from chat.storage.tables import Table
from tests.support.turns import chat_turn

pytestmark = pytest.mark.anyio

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).isoformat(timespec="microseconds").replace("+00:00", "Z")


@pytest.fixture
async def stores(azurite):
    """A worker's turn store and list, another worker's list, and the conversations table."""
    prefix = "lag" + uuid.uuid4().hex[:8]
    messages, conversations, other, raw = (
        TableClient.from_connection_string(azurite.connection_string, table_name=prefix + name)
        for name in ("messages", "conversations", "conversations", "conversations")
    )
    store = TurnStore(Table(messages))
    await store.table.ready()
    listing = ConversationIndex(Table(conversations), store.read_head)
    await Table(conversations).ready()
    yield store, listing, ConversationIndex(Table(other), store.read_head), raw
    await messages.delete_table()
    await conversations.delete_table()
    await store.close()
    for client in (conversations, other, raw):
        await client.close()


async def turn(store: TurnStore, listing: ConversationIndex, conversation: Conversation, when: float) -> None:
    """A turn as the engine commits one: stored, then listed (a first turn lists before, ahead)."""
    head = await store.read_head(conversation)
    new = chat_turn(f"question at {when}", "answer", created_at=at(when))
    first = head.latest_turn == 0
    if first:
        await listing.record_activity(
            conversation, floor=0, first_message="q", at=new.created_at, message_count=2, ahead=True
        )
    await store.append_turn(conversation, head, new)
    await listing.record_activity(
        conversation,
        floor=0,
        first_message="q",
        at=new.created_at,
        message_count=head.item_count + 2,
        retitle=first,
    )


async def list_rows(raw: TableClient, owner: str) -> dict[str, tuple[str, int]]:
    """The list's rows as stored: RowKey -> (updated, count)."""
    return {
        row["RowKey"]: (row["updated"], int(row["count"]))
        async for row in raw.query_entities("PartitionKey eq @pk", parameters={"pk": keys.owner_partition(owner)})
    }


async def every_page(listing: ConversationIndex, owner: str, limit: int) -> list[list[tuple[str, str, int]]]:
    pages, cursor = [], None
    while True:
        page = await listing.list_conversations(owner, limit, cursor)
        pages.append([(entry.id, entry.updated_at, entry.message_count) for entry in page.items])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


async def test_a_turn_listed_lately_writes_nothing_to_the_list_yet_the_list_shows_it(stores):
    store, listing, other, raw = stores
    owner = f"owner-{uuid.uuid4().hex}"
    a, b = Conversation(owner, "a"), Conversation(owner, "b")
    await turn(store, listing, a, 0)
    await turn(store, listing, b, 10)
    before = await list_rows(raw, owner)

    await turn(store, listing, a, 20)  # listed 20 s ago by this worker: the list stays as it is
    assert await list_rows(raw, owner) == before
    assert await every_page(listing, owner, 10) == [[("a", at(20), 4), ("b", at(10), 2)]]
    assert await every_page(other, owner, 10) == [[("a", at(20), 4), ("b", at(10), 2)]]

    await turn(store, listing, a, LIST_LAG_SECONDS + 1)  # listed longer ago than the lag: updated
    assert (at(LIST_LAG_SECONDS + 1), 6) in (await list_rows(raw, owner)).values()

    # A worker that did not list it updates the list on its turn.
    await turn(store, other, b, LIST_LAG_SECONDS + 2)
    assert (at(LIST_LAG_SECONDS + 2), 4) in (await list_rows(raw, owner)).values()
    assert await every_page(listing, owner, 10) == [[("b", at(LIST_LAG_SECONDS + 2), 4), ("a", at(301), 6)]]


async def test_pages_are_in_the_order_of_the_times_shown_whatever_the_rows_say(stores):
    store, listing, _, raw = stores
    owner = f"owner-{uuid.uuid4().hex}"
    names = [f"c{i}" for i in range(7)]
    for i, name in enumerate(names):
        await turn(store, listing, Conversation(owner, name), i)
    # Later turns in the lag: c0 is now the newest, c3 the second; the rows still order them by
    # their first turns.
    await turn(store, listing, Conversation(owner, "c3"), 30)
    await turn(store, listing, Conversation(owner, "c0"), 40)
    assert sorted(updated for updated, _ in (await list_rows(raw, owner)).values())[-1] < at(7)

    expected = ["c0", "c3", "c6", "c5", "c4", "c2", "c1"]
    for limit in (1, 2, 3, 7, 20):
        pages = await every_page(listing, owner, limit)
        shown = [entry for page in pages for entry in page]
        assert [name for name, _, _ in shown] == expected, limit
        assert all(len(page) <= limit for page in pages)
        assert shown[0] == ("c0", at(40), 4) and shown[1] == ("c3", at(30), 4)
        assert [updated for _, updated, _ in shown] == sorted((u for _, u, _ in shown), reverse=True)


async def test_an_item_deleted_keeps_the_newest_turns_time_on_the_list(stores):
    store, listing, _, _ = stores
    owner = f"owner-{uuid.uuid4().hex}"
    a = Conversation(owner, "a")
    await turn(store, listing, a, 0)
    await turn(store, listing, a, 20)  # not written to the list: its head holds it
    history = await store.read_history(a, 10_000, lambda t: 1)
    assert await store.delete_item(a, history.turns[0].inputs[0].id)
    head = await store.read_head(a)
    await listing.recount(a, floor=0, message_count=head.item_count)  # as the engine does after it
    assert await every_page(listing, owner, 10) == [[("a", at(20), 3)]]


async def test_an_owner_past_the_extra_rows_sees_every_conversation_once(stores, monkeypatch):
    """More conversations listed within the lag of each other than a page reads beyond its size:
    the pages go on in the order listed, and none is left out or shown twice."""
    from chat.storage import list_pages

    monkeypatch.setattr(list_pages, "MAX_EXTRA_ROWS", 3)
    store, listing, _, _ = stores
    owner = f"owner-{uuid.uuid4().hex}"
    names = [f"c{i:02d}" for i in range(12)]
    for i, name in enumerate(names):
        await turn(store, listing, Conversation(owner, name), i)
    await turn(store, listing, Conversation(owner, "c00"), 30)  # the oldest row, now the newest
    for limit in (1, 2, 3, 5):
        shown = [name for page in await every_page(listing, owner, limit) for name, _, _ in page]
        assert sorted(shown) == names, limit  # each once
    # Within what a page may read, the order is the times'.
    assert [name for name, _, _ in (await every_page(listing, owner, 20))[0]][:2] == ["c00", "c11"]
