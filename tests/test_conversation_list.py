"""The owner's conversation list in-process against Azurite, with two workers on one table: a
recount after an item left sets the count the head holds, on the record and its activity row,
whatever record the other worker remembers, and lists nothing that is not listed."""

from __future__ import annotations

import uuid

import pytest
from azure.data.tables.aio import TableClient

from chat.engine.history import Conversation, Head
from chat.storage import keys
from chat.storage.conversations import ConversationIndex
from chat.storage.tables import Table

pytestmark = pytest.mark.anyio

AT = "2026-01-02T03:04:05.000000Z"
LATER = "2026-01-02T03:15:00.000000Z"  # more than LIST_LAG_SECONDS after AT: a turn then updates the list


async def no_heads(conversation: Conversation) -> Head:
    """These lists' conversations have no turns stored: a page shows what their rows say."""
    return Head()


@pytest.fixture
async def workers(azurite):
    """Two workers' lists on one table, and the table itself."""
    name = "list" + uuid.uuid4().hex[:8]
    clients = [TableClient.from_connection_string(azurite.connection_string, table_name=name) for _ in range(3)]
    await clients[0].create_table()
    yield ConversationIndex(Table(clients[0]), no_heads), ConversationIndex(Table(clients[1]), no_heads), clients[2]
    await clients[2].delete_table()
    for client in clients:
        await client.close()


async def rows(table: TableClient, owner: str) -> dict[str, int | None]:
    """Each row's count, by the kind of row: "record" or "activity"."""
    found = {}
    async for row in table.query_entities("PartitionKey eq @pk", parameters={"pk": keys.owner_partition(owner)}):
        kind = "activity" if keys.is_activity_row_key(row["RowKey"]) else "record"
        found[kind] = row.get("count")
    return found


async def test_a_recount_lowers_the_count_on_every_worker(workers):
    one, other, table = workers
    conversation = Conversation(f"owner-{uuid.uuid4().hex}", "c")
    await one.record_activity(conversation, floor=0, first_message="hello", at=AT, message_count=6)

    await other.recount(conversation, floor=0, message_count=5)
    assert await rows(table, conversation.owner) == {"record": 5, "activity": 5}
    for worker in (one, other):
        [entry] = (await worker.list_conversations(conversation.owner, 10, None)).items
        assert (entry.title, entry.message_count, entry.updated_at) == ("hello", 5, AT)

    # The first worker's next turn, under the record it remembers from before the recount,
    # counts on from the recount.
    await one.record_activity(conversation, floor=0, first_message="hello", at=LATER, message_count=7)
    [entry] = (await other.list_conversations(conversation.owner, 10, None)).items
    assert (entry.message_count, entry.updated_at) == (7, LATER)
    assert await rows(table, conversation.owner) == {"record": 7, "activity": 7}


async def test_a_recount_lists_nothing_not_listed(workers):
    one, other, table = workers
    owner = f"owner-{uuid.uuid4().hex}"
    never_listed = Conversation(owner, "never")
    await one.recount(never_listed, floor=0, message_count=3)
    assert await rows(table, owner) == {}

    deleted = Conversation(owner, "deleted")
    await one.record_activity(deleted, floor=0, first_message="gone", at=AT, message_count=4)
    await other.forget(deleted, 5)
    await one.recount(deleted, floor=0, message_count=3)
    await one.recount(deleted, floor=5, message_count=3)
    assert await rows(table, owner) == {"record": None}  # the tombstone alone
    assert (await one.list_conversations(owner, 10, None)).items == []


async def test_a_recount_under_another_floor_changes_nothing(workers):
    one, _, table = workers
    conversation = Conversation(f"owner-{uuid.uuid4().hex}", "c")
    await one.record_activity(conversation, floor=3, first_message="afresh", at=AT, message_count=4)
    await one.recount(conversation, floor=0, message_count=1)
    assert await rows(table, conversation.owner) == {"record": 4, "activity": 4}


async def marks(listing: ConversationIndex, owner: str) -> dict[str, int | None]:
    page = await listing.list_conversations(owner, 20, None)
    return {summary.id: summary.unconfirmed_since for summary in page.items}


async def test_an_entry_written_ahead_is_unconfirmed_until_confirmed_on_any_worker(workers):
    one, other, table = workers
    conversation = Conversation(f"owner-{uuid.uuid4().hex}", "c")
    await one.record_activity(conversation, floor=0, first_message="hello", at=AT, message_count=2, ahead=True)
    assert (await marks(one, conversation.owner))["c"] is not None
    await other.confirm(conversation, 3)  # another floor: not this entry
    assert (await marks(one, conversation.owner))["c"] is not None
    await other.confirm(conversation, 0)
    assert await marks(one, conversation.owner) == {"c": None}
    assert await rows(table, conversation.owner) == {"record": 2, "activity": 2}
    # A turn's own update (not ahead) confirms it too.
    await one.record_activity(conversation, floor=0, first_message="hello", at=AT, message_count=2, ahead=True)
    await one.mark_unconfirmed(conversation)
    assert (await marks(one, conversation.owner))["c"] is not None
    await one.record_activity(conversation, floor=0, first_message="hello", at=LATER, message_count=4)
    assert await marks(one, conversation.owner) == {"c": None}


async def test_an_unconfirmed_entry_is_discarded_but_a_confirmed_one_is_not(workers):
    one, other, table = workers
    owner = f"owner-{uuid.uuid4().hex}"
    never, kept = Conversation(owner, "never"), Conversation(owner, "kept")
    await one.record_activity(never, floor=0, first_message="lost", at=AT, message_count=2, ahead=True)
    await one.record_activity(kept, floor=0, first_message="kept", at=AT, message_count=2)
    await other.discard(never, 0)
    await other.discard(kept, 0)
    assert await marks(one, owner) == {"kept": None}
    left = [
        row["RowKey"]
        async for row in table.query_entities("PartitionKey eq @pk", parameters={"pk": keys.owner_partition(owner)})
    ]
    assert len(left) == 2  # the kept one's record and activity row: nothing of the discarded one


def test_the_activity_order_is_the_order_of_the_times_shown_to_the_microsecond():
    """Two conversations active in one millisecond list in the order of their `updated_at`."""
    from chat.storage.activity import micros  # the time of an activity row

    times = ["2026-12-07T08:08:31.876959Z", "2026-12-07T08:08:31.876115Z", "2026-12-07T08:08:31.877001Z"]
    by_key = sorted(times, key=lambda t: keys.activity_row_key(micros(t), "0" * 64))
    assert by_key == sorted(times, reverse=True)
    for t in times:
        assert keys.is_activity_row_key(keys.activity_row_key(micros(t), "f" * 64))
    assert keys.is_activity_row_key("a" + "8" * 13 + "0" * 64)  # a row written to the millisecond, before
