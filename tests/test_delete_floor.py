"""The delete's floor, in-process against Azurite: what a delete cut short leaves is never read,
numbers are never reused, conversations stored before head rows existed keep working, and the
list's tombstone keeps out every turn from before the delete.
"""

from __future__ import annotations

import uuid

import pytest
from azure.data.tables.aio import TableClient

from chat.engine.errors import ConversationNotFound, TurnConflict
from chat.engine.history import Conversation, Head, NewTurn
from chat.storage import codec, keys
from chat.storage.conversations import ConversationIndex
from chat.storage.messages import TurnStore
from chat.storage.tables import Table
from tests.support.turns import chat_turn, cost, user_text

pytestmark = pytest.mark.anyio

BUDGET = 10_000


@pytest.fixture
async def tables(azurite):
    prefix = "floor" + uuid.uuid4().hex[:8]
    messages, conversations = (
        TableClient.from_connection_string(azurite.connection_string, table_name=prefix + name)
        for name in ("messages", "conversations")
    )
    store = TurnStore(Table(messages))
    listing = ConversationIndex(Table(conversations), store.read_head)
    await store.table.ready()  # creates the table
    yield store, listing, messages
    await messages.delete_table()
    await conversations.delete_table()
    await store.close()
    await conversations.close()


def new_turn(text: str, key: str | None = None) -> NewTurn:
    return chat_turn(text, f"answer to {text}", idempotency_key=key, request_hash=key and "h")


async def add_turns(store: TurnStore, conversation: Conversation, *texts: str) -> None:
    for text in texts:
        await store.append_turn(conversation, await store.read_head(conversation), new_turn(text))


async def texts(store: TurnStore, conversation: Conversation) -> list[str]:
    history = await store.read_history(conversation, BUDGET, cost)
    return [user_text(t) for t in history.turns]


async def test_a_delete_cut_short_after_its_floor_leaves_nothing_readable(tables):
    store, _, messages = tables
    conversation = Conversation("app", f"cut-{uuid.uuid4().hex}")
    await add_turns(store, conversation, "one", "two", "three")
    await store.append_turn(conversation, await store.read_head(conversation), new_turn("four", key="k"))
    older = (await store.items_page(conversation, limit=2, cursor=None)).next_cursor
    assert older is not None

    floor = await store.raise_floor(conversation)  # and the delete stops there
    assert floor == 5

    # Every row is still stored, and none is read.
    with pytest.raises(ConversationNotFound):
        await store.items_page(conversation, limit=10, cursor=None)
    assert (await store.items_page(conversation, limit=10, cursor=older)).items == []
    history = await store.read_history(conversation, BUDGET, cost, idempotency_key="k")
    assert history.turns == [] and history.replay is None
    assert (history.head.latest_turn, history.head.floor) == (5, 5)
    assert await store.find_idempotent(conversation, "k", floor) is None

    # The conversation started afresh numbers on from the floor, and reads only its own turns.
    await store.append_turn(conversation, history.head, new_turn("afresh", key="k"))
    assert await texts(store, conversation) == ["afresh"]
    page = await store.items_page(conversation, limit=1, cursor=None)
    assert [m.item.text for m in page.items] == ["answer to afresh"]
    rest = await store.items_page(conversation, limit=10, cursor=page.next_cursor)
    assert [m.item.text for m in rest.items] == ["afresh"] and rest.next_cursor is None
    replay = await store.find_idempotent(conversation, "k", floor)
    assert replay is not None and replay[0].number == 6

    # Finishing the cut-short delete removes the old turns, and the rows that point at them, and
    # keeps the new one (its items' index rows too) and the head.
    await store.delete_turns(conversation, floor)
    rows = [e async for e in messages.query_entities("PartitionKey eq @pk", parameters={"pk": conversation.key})]
    kept = [stored.item.id for stored in page.items + rest.items]
    assert {r["RowKey"] for r in rows} == {
        keys.HEAD_ROW_KEY,
        keys.item_row_key(6, 1, 0),
        keys.item_row_key(6, 0, 0),
        keys.idempotency_row_key("k"),
        *(keys.item_index_row_key(item_id) for item_id in kept),
    }
    assert await texts(store, conversation) == ["afresh"]


async def test_every_delete_raises_the_floor_so_a_turn_that_read_the_last_one_fails(tables):
    store, _, _ = tables
    conversation = Conversation("app", f"twice-{uuid.uuid4().hex}")
    never_used = await store.raise_floor(conversation)
    read = await store.read_head(conversation)
    assert (never_used, read.latest_turn, read.floor) == (1, 1, 1)
    again = await store.raise_floor(conversation)  # a delete repeated, no turn between
    assert again == 2
    with pytest.raises(TurnConflict):
        await store.append_turn(conversation, read, new_turn("too late"))
    assert await texts(store, conversation) == []


async def test_a_conversation_stored_without_a_head_continues_and_deletes(tables):
    """Conversations stored before head rows existed: their newest message row names the turn."""
    store, _, messages = tables
    conversation = Conversation("app", f"old-{uuid.uuid4().hex}")
    rows = [e for n in (1, 2) for e in codec.turn_entities(conversation, n, new_turn(f"old {n}"))]
    await messages.submit_transaction([("create", row) for row in rows])
    head = await store.read_head(conversation)
    assert head == Head(latest_turn=2, floor=0, etag=None)

    history = await store.read_history(conversation, BUDGET, cost)
    assert [user_text(t) for t in history.turns] == ["old 1", "old 2"] and history.head == head
    assert await store.append_turn(conversation, history.head, new_turn("new 3")) == 3
    with pytest.raises(TurnConflict):  # a second turn that read the same: it must renumber
        await store.append_turn(conversation, history.head, new_turn("racing 3"))
    assert await texts(store, conversation) == ["old 1", "old 2", "new 3"]

    legacy = Conversation("app", f"old-{uuid.uuid4().hex}")
    await messages.submit_transaction([("create", row) for row in codec.turn_entities(legacy, 1, new_turn("x"))])
    floor = await store.raise_floor(legacy)
    assert floor == 2
    await store.delete_turns(legacy, floor)
    assert await texts(store, legacy) == []


async def test_the_list_keeps_out_every_turn_from_before_the_delete(tables):
    _, listing, _ = tables
    conversation = Conversation("app", f"listed-{uuid.uuid4().hex}")

    async def record(floor: int, first: str, at: str, count: int) -> None:
        await listing.record_activity(conversation, floor=floor, first_message=first, at=at, message_count=count)

    async def listed() -> list[tuple[str, int]]:
        page = await listing.list_conversations("app", 10, None)
        return [(c.title, c.message_count) for c in page.items if c.id == conversation.id]

    await record(0, "secret opening", "2026-01-01T00:00:00.000000Z", 2)
    await listing.forget(conversation, floor=3)
    assert await listed() == []
    # A turn that read the conversation before the delete, listing itself late, brings nothing back.
    await record(0, "secret opening", "2026-01-01T00:00:05.000000Z", 4)
    assert await listed() == []

    # The conversation started afresh under the same ID is listed anew, with its own title.
    await record(3, "a new beginning", "2026-01-01T00:01:00.000000Z", 2)
    assert await listed() == [("a new beginning", 2)]
    await record(3, "a new beginning", "2026-01-01T00:06:10.000000Z", 4)  # past the lag: the list is updated
    assert await listed() == [("a new beginning", 4)]
    # The delete that raised floor 3, finishing late, leaves the new conversation listed.
    await listing.forget(conversation, floor=3)
    assert await listed() == [("a new beginning", 4)]
    # A turn from before that delete still cannot touch it.
    await record(0, "secret opening", "2026-01-01T00:12:00.000000Z", 6)
    assert await listed() == [("a new beginning", 4)]

    # A listing created by a turn of the old conversation after its delete started is unlisted by it.
    other = Conversation("app", f"listed-{uuid.uuid4().hex}")
    await listing.record_activity(
        other, floor=0, first_message="late", at="2026-01-01T00:13:00.000000Z", message_count=2
    )
    await listing.forget(other, floor=1)
    page = await listing.list_conversations("app", 10, None)
    assert [c.id for c in page.items] == [conversation.id]
