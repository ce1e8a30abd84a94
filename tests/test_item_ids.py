"""An item's ID names the conversation it is stored in (chat/engine/ids.py), as a response's does,
so an item_reference finds it there with no index of the owner's: in-process against Azurite, with
an item minted before IDs named their conversation still found through the owner's index."""

from __future__ import annotations

import uuid

import pytest
from azure.data.tables.aio import TableClient

from chat.engine.history import Conversation, NewTurn, ResponseRecord
from chat.engine.ids import item_partition, minting_in, new_item_id
from chat.engine.items import Message, message, stored_in
from chat.storage import keys
from chat.storage.messages import TurnStore
from chat.storage.tables import Table

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(azurite):
    client = TableClient.from_connection_string(azurite.connection_string, table_name="ids" + uuid.uuid4().hex[:8])
    store = TurnStore(Table(client))
    await store.table.ready()
    yield store, client
    await client.delete_table()
    await store.close()


def test_an_id_minted_in_a_turn_names_its_conversation_and_no_other_does():
    key = Conversation("ada", "c1").key
    with minting_in(key):
        inside = message("assistant", "hi")
    outside = message("assistant", "hi")
    assert item_partition(inside.id) == key and inside.id.startswith("msg_")
    assert item_partition(outside.id) is None and len(outside.id) == len("msg_") + 24
    # An input the door minted before its turn was placed takes the conversation's.
    assert item_partition(stored_in(outside, key).id) == key and stored_in(inside, key) is inside
    for made_up in ("msg_" + key, "msg_" + key + "0" * 23, "msg_" + key.upper() + "0" * 24, "xyz_" + key + "0" * 24):
        assert item_partition(made_up) is None


async def response_turn(store: TurnStore, conversation: Conversation, *items: Message) -> None:
    turn = NewTurn(items[:1], items[1:], "stop", None, response=ResponseRecord(f"resp_{uuid.uuid4().hex}", ""))
    number = await store.append_turn(conversation, await store.read_head(conversation), turn)
    await store.index_items(conversation, number, turn.items)  # as the engine's commit does, beside


async def owner_index(client: TableClient, owner: str) -> list[str]:
    partition = keys.owner_partition(owner)
    return [row["RowKey"] async for row in client.query_entities("PartitionKey eq @pk", parameters={"pk": partition})]


async def test_an_item_is_found_by_its_id_in_the_conversation_it_names(store):
    store, client = store
    owner = f"ada-{uuid.uuid4().hex[:6]}"
    for conversation in (Conversation(owner, "c1"), Conversation(owner, "\x1fchain")):  # a conversation, a chain
        with minting_in(conversation.key):
            question, answer = message("user", "q"), message("assistant", "a")
        await response_turn(store, conversation, question, answer)
        assert (await store.find_owned_item(owner, answer.id)) == answer
        assert (await store.find_owned_item(owner, question.id)) == question
        assert await store.find_owned_item("someone else", answer.id) is None
    assert await owner_index(client, owner) == []  # nothing written beside the turns


async def test_an_item_minted_before_ids_named_their_conversation_is_found_through_the_owners_index(store):
    store, client = store
    owner = f"bo-{uuid.uuid4().hex[:6]}"
    conversation = Conversation(owner, "old")
    question = message("user", "q")
    answer = Message(new_item_id("message"), "assistant", "a")  # outside any turn: names nothing
    await response_turn(store, conversation, question, answer)
    assert sorted(await owner_index(client, owner)) == sorted(keys.item_index_row_key(i.id) for i in (question, answer))
    assert (await store.find_owned_item(owner, answer.id)) == answer
    assert await store.find_owned_item("someone else", answer.id) is None


async def test_an_item_is_found_after_another_item_of_its_turn_was_deleted(store):
    store, _ = store
    conversation = Conversation(f"cy-{uuid.uuid4().hex[:6]}", "c")
    with minting_in(conversation.key):
        question, answer = message("user", "q"), message("assistant", "a")
    await response_turn(store, conversation, question, answer)
    assert await store.delete_item(conversation, question.id)
    assert (await store.find_owned_item(conversation.owner, answer.id)) == answer  # it moved up a place
    assert await store.find_owned_item(conversation.owner, question.id) is None
