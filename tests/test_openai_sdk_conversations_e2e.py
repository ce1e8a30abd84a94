"""The official openai Python package, unchanged, drives the conversations of the OpenAI-compatible
door under /api/v1: conversations created, read, updated and deleted, their items added, paged both
ways and deleted, bad requests refused with nothing changed, the chat routes on the same
conversations, and a deleted conversation's responses gone with it."""

from __future__ import annotations

import asyncio
import json
import uuid

import openai
import pytest

from tests.support.api import Api
from tests.support.prompts import contents, prompt_of

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def test_a_conversation_is_created_read_updated_and_deleted(client):
    created = await client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "Remember the number 7."}],
        metadata={"topic": "numbers"},
    )
    assert created.id.startswith("conv_") and created.object == "conversation"
    assert created.metadata == {"topic": "numbers"}
    read = await client.conversations.retrieve(created.id)
    assert (read.id, read.created_at, read.metadata) == (created.id, created.created_at, {"topic": "numbers"})
    updated = await client.conversations.update(created.id, metadata={"topic": "digits", "size": "1"})
    assert updated.metadata == {"topic": "digits", "size": "1"}
    assert (await client.conversations.retrieve(created.id)).metadata == {"topic": "digits", "size": "1"}
    [item] = (await client.conversations.items.list(created.id)).data
    assert item.type == "message" and item.role == "user"
    assert item.content[0].type == "input_text" and item.content[0].text == "Remember the number 7."

    deleted = await client.conversations.delete(created.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (created.id, True, "conversation.deleted")
    with pytest.raises(openai.NotFoundError):
        await client.conversations.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        await client.conversations.items.list(created.id)


async def test_items_are_added_paged_both_ways_read_and_deleted(client):
    conversation = await client.conversations.create()
    added = []
    for start in range(0, 25, 5):
        page = await client.conversations.items.create(
            conversation.id,
            items=[{"type": "message", "role": "user", "content": f"item {n}"} for n in range(start, start + 5)],
        )
        assert [item.content[0].text for item in page.data] == [f"item {n}" for n in range(start, start + 5)]
        added += page.data
    texts = [f"item {n}" for n in range(25)]

    # Auto-pagination follows has_more and last_id, in both orders.
    ascending = [item async for item in client.conversations.items.list(conversation.id, order="asc", limit=4)]
    assert [item.content[0].text for item in ascending] == texts
    descending = [item async for item in client.conversations.items.list(conversation.id, limit=7)]
    assert [item.content[0].text for item in descending] == texts[::-1]
    assert [item.id for item in ascending] == [item.id for item in added]

    first = await client.conversations.items.list(conversation.id, order="asc", limit=10)
    assert (first.first_id, first.last_id, first.has_more) == (added[0].id, added[9].id, True)
    after = await client.conversations.items.list(conversation.id, order="asc", after=added[19].id, limit=10)
    assert [item.content[0].text for item in after.data] == texts[20:] and after.has_more is False

    one = await client.conversations.items.retrieve(added[3].id, conversation_id=conversation.id)
    assert one.id == added[3].id and one.content[0].text == "item 3"
    after_delete = await client.conversations.items.delete(added[3].id, conversation_id=conversation.id)
    assert after_delete.id == conversation.id
    with pytest.raises(openai.NotFoundError):
        await client.conversations.items.retrieve(added[3].id, conversation_id=conversation.id)
    left = [item async for item in client.conversations.items.list(conversation.id, order="asc")]
    assert [item.content[0].text for item in left] == texts[:3] + texts[4:]


async def test_bad_conversation_requests_are_400s_and_change_nothing(client):
    conversation = await client.conversations.create(metadata={"a": "1"})
    with pytest.raises(openai.BadRequestError) as raised:
        await client.conversations.items.create(
            conversation.id, items=[{"type": "message", "role": "user", "content": str(n)} for n in range(21)]
        )
    assert raised.value.code == "array_above_max_length" and raised.value.param == "items"
    with pytest.raises(openai.BadRequestError) as raised:
        await client.conversations.update(conversation.id, metadata={f"k{n}": "v" for n in range(17)})
    assert raised.value.param == "metadata"
    with pytest.raises(openai.BadRequestError) as raised:
        await client.conversations.items.list(conversation.id, limit=101)
    assert raised.value.param == "limit"
    assert (await client.conversations.retrieve(conversation.id)).metadata == {"a": "1"}
    assert (await client.conversations.items.list(conversation.id)).data == []


async def test_nan_infinity_and_keys_named_twice_are_invalid_json_and_store_nothing(client, model, server, standins):
    # The SDK itself refuses to write NaN or Infinity; other clients (Python's json.dumps) do.
    conversation = await client.conversations.create(metadata={"a": "1"})
    calls = len(standins.requests())
    base = f"/api/v1/conversations/{conversation.id}"
    turn = json.dumps({"model": model, "input": "hi", "conversation": conversation.id})[:-1] + ", "
    async with Api(server.url) as api:
        for path, raw, said in [
            ("/api/v1/responses", turn + '"temperature": NaN}', "NaN"),
            ("/api/v1/responses", turn + '"top_p": Infinity}', "Infinity"),
            ("/api/v1/responses", turn + '"temperature": -Infinity}', "-Infinity"),
            ("/api/v1/responses", turn + '"input": "again"}', "twice"),
            (
                base + "/items",
                '{"items": [{"type": "message", "role": "user", "content": "a", "content": "b"}]}',
                "twice",
            ),
            (base, '{"metadata": {"a": "2"}, "metadata": {"a": "3"}}', "twice"),
            ("/api/v1/conversations", '{"metadata": {"k": "1", "k": "2"}}', "twice"),
        ]:
            reply = await api.request("POST", path, body=raw.encode())
            assert reply.status == 400, (path, reply.body)
            assert reply.body["error"]["code"] == "invalid_json" and said in reply.body["error"]["message"]
    assert len(standins.requests()) == calls
    assert (await client.conversations.retrieve(conversation.id)).metadata == {"a": "1"}
    assert (await client.conversations.items.list(conversation.id)).data == []


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_paging_goes_on_after_an_item_deleted_between_pages(client, order):
    conversation = await client.conversations.create(
        items=[{"type": "message", "role": "user", "content": f"n{n}"} for n in range(6)]
    )
    first = await client.conversations.items.list(conversation.id, order=order, limit=2)
    await client.conversations.items.delete(first.last_id, conversation_id=conversation.id)
    rest = await client.conversations.items.list(conversation.id, order=order, limit=10, after=first.last_id)
    expected = ["n2", "n3", "n4", "n5"] if order == "asc" else ["n3", "n2", "n1", "n0"]
    assert [item.content[0].text for item in rest.data] == expected
    # A deleted item cannot be read or deleted again.
    with pytest.raises(openai.NotFoundError):
        await client.conversations.items.delete(first.last_id, conversation_id=conversation.id)


async def test_the_list_counts_a_conversations_items(client, model, server):
    conversation = await client.conversations.create(
        items=[{"type": "message", "role": "user", "content": f"part {n}"} for n in range(3)]
    )
    await client.responses.create(model=model, input="and a question", conversation=conversation.id)
    async with Api(server.url) as api:
        listed = (await api.conversations(limit=200)).body["conversations"]
    [entry] = [c for c in listed if c["id"] == conversation.id]
    assert entry["message_count"] == 5
    assert entry["title"].startswith("part 0 part 1 part 2")


async def test_concurrent_responses_in_one_conversation_all_land(client, model):
    conversation = await client.conversations.create()
    answers = await asyncio.gather(
        *(client.responses.create(model=model, input=f"at once {n}", conversation=conversation.id) for n in range(6))
    )
    assert len({answer.id for answer in answers}) == 6
    items = [item async for item in client.conversations.items.list(conversation.id, order="asc")]
    assert len(items) == 12
    # Each turn is whole: every user message is followed by its own answer.
    for question, answer in zip(items[::2], items[1::2], strict=True):
        assert answer.content[0].text.endswith(question.content[0].text)


# -- one conversation, both doors ------------------------------------------------------------------


async def test_a_conversation_made_here_continues_on_the_chat_routes_and_back(client, model, server):
    conversation = await client.conversations.create(items=[{"type": "message", "role": "user", "content": "hi"}])
    async with Api(server.url) as api:
        reply = await api.chat("from the chat route", conversation.id)
        assert reply.status == 200 and reply.body["sessionState"] == conversation.id
        assert reply.body["message"]["content"] == "Echo #1: from the chat route"
        back = await client.responses.create(model=model, input="and back", conversation=conversation.id)
        assert back.output_text == "Echo #3: and back"

        # A conversation started on the chat routes is one here too.
        started = await api.chat("started on /api/chat")
        session = started.body["sessionState"]
        items = (await client.conversations.items.list(session, order="asc")).data
        assert [item.content[0].text for item in items] == ["started on /api/chat", "Echo #0: started on /api/chat"]
        assert (await client.conversations.retrieve(session)).id == session


# -- a deleted conversation ------------------------------------------------------------------------


async def test_a_deleted_conversations_responses_are_gone_with_it(client, model, standins):
    conversation = await client.conversations.create()
    secret = f"my secret is {uuid.uuid4().hex[:6]}"
    first = await client.responses.create(model=model, input=secret, conversation=conversation.id)
    branched = await client.responses.create(model=model, input="branch off", previous_response_id=first.id)
    await client.conversations.delete(conversation.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.input_items.list(first.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.create(model=model, input="again", previous_response_id=first.id)
    # The chain that branched off goes on, without the deleted turn.
    later = await client.responses.create(model=model, input="and later", previous_response_id=branched.id)
    assert secret not in contents(prompt_of(standins, "and later"))
    assert later.output_text == "Echo #2: and later"


async def test_a_delete_cut_short_after_its_floor_leaves_no_response_readable(client, model, server, azurite):
    from azure.data.tables.aio import TableClient

    from chat.engine.history import Conversation
    from chat.storage.messages import TurnStore
    from chat.storage.tables import Table

    conversation = await client.conversations.create()
    response = await client.responses.create(model=model, input="soon deleted", conversation=conversation.id)
    table = TableClient.from_connection_string(
        azurite.connection_string, table_name=server.env["CHAT_TABLE_PREFIX"] + "messages"
    )
    store = TurnStore(Table(table))
    try:
        await store.raise_floor(Conversation("app", conversation.id))  # and the delete stops there
    finally:
        await store.close()
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.create(model=model, input="after it", previous_response_id=response.id)


async def test_items_a_conversation_was_created_with_or_given_are_found_by_item_reference(client, model, standins):
    seeded = await client.conversations.create(items=[{"type": "message", "role": "user", "content": "seeded item"}])
    [first] = [item async for item in client.conversations.items.list(seeded.id)]
    other = await client.conversations.create()
    [added] = (
        await client.conversations.items.create(
            other.id, items=[{"type": "message", "role": "user", "content": "added item"}]
        )
    ).data
    for item, text in ((first, "seeded item"), (added, "added item")):
        answer = await client.responses.create(
            model=model, input=[{"type": "item_reference", "id": item.id}, {"role": "user", "content": "and this"}]
        )
        assert answer.output_text == "Echo #1: and this"
        assert contents(prompt_of(standins, "and this"))[-2:] == [text, "and this"]
    # Another conversation's later delete takes its items out of reach, as a response's.
    await client.conversations.delete(other.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.create(model=model, input=[{"type": "item_reference", "id": added.id}])
