"""Inputs no Table transaction holds (many items, or megabytes of text) are stored whole: the turn's
rows go to one blob in Azurite's blob service before the transaction that makes the turn visible,
and every read (the next turn's window, input items, conversation items, one item, a page from
inside the turn, a delete of one item, a delete of the conversation) gives back what was sent."""

from __future__ import annotations

import openai
import pytest

from tests.support.azurite import blob_names

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def sent_upstream(standins, last_user_text: str) -> list[dict]:
    for entry in reversed(standins.requests()):
        messages = entry["body"]["messages"]
        users = [m for m in messages if m["role"] == "user"]
        if users and users[-1]["content"] == last_user_text:
            return messages
    raise AssertionError(f"the model was never asked {last_user_text!r}")


async def test_a_chain_turn_of_150_items_is_stored_whole_and_sent_again_next_turn(client, model, standins):
    many = [{"role": "user", "content": f"item {n}"} for n in range(150)]
    first = await client.responses.create(model=model, input=many)
    assert first.status == "completed"
    listed = [item async for item in client.responses.input_items.list(first.id, order="asc")]
    assert [item.content[0].text for item in listed] == [f"item {n}" for n in range(150)]
    await client.responses.create(model=model, input="and now?", previous_response_id=first.id)
    texts = [m["content"] for m in sent_upstream(standins, "and now?") if m["role"] == "user"]
    assert texts == [f"item {n}" for n in range(150)] + ["and now?"]


@pytest.mark.parametrize("stream", [False, True])
async def test_a_conversation_turn_of_megabytes_is_stored_whole(client, model, standins, stream):
    conversation = await client.conversations.create()
    # 20 items of 100,000 characters each (two bytes each in a Table): 4 MB, more than a transaction holds.
    big = [{"role": "user", "content": f"{n:02d}" + "é" * 99_998} for n in range(20)]
    if stream:
        async with client.responses.stream(model=model, input=big, conversation=conversation.id) as events:
            answer = await events.get_final_response()
    else:
        answer = await client.responses.create(model=model, input=big, conversation=conversation.id)
    assert answer.status == "completed"
    items = [item async for item in client.conversations.items.list(conversation.id, order="asc")]
    assert [item.content[0].text for item in items[:20]] == [item["content"] for item in big]
    assert items[20].role == "assistant" and len(items) == 21
    one = await client.conversations.items.retrieve(items[7].id, conversation_id=conversation.id)
    assert one.content[0].text == big[7]["content"]
    # A page that starts inside the turn, newest first, then oldest first.
    page = await client.conversations.items.list(conversation.id, after=items[10].id, limit=3, order="desc")
    assert [item.id for item in page.data] == [items[9].id, items[8].id, items[7].id]
    page = await client.conversations.items.list(conversation.id, after=items[10].id, limit=3, order="asc")
    assert [item.id for item in page.data] == [items[11].id, items[12].id, items[13].id]


async def test_an_item_of_a_big_turn_is_deleted_alone_and_a_deleted_conversation_leaves_no_blob(
    client, model, azurite, server
):
    before = set(await blob_names(azurite, server))
    conversation = await client.conversations.create()
    notes = [{"role": "user", "content": f"note {n}"} for n in range(80)]
    await client.responses.create(model=model, input=notes, conversation=conversation.id)
    items = [item async for item in client.conversations.items.list(conversation.id, order="asc", limit=100)]
    assert [item.content[0].text for item in items[:80]] == [f"note {n}" for n in range(80)]
    assert len(set(await blob_names(azurite, server)) - before) == 1
    await client.conversations.items.delete(items[3].id, conversation_id=conversation.id)
    after = [item async for item in client.conversations.items.list(conversation.id, order="asc", limit=100)]
    assert [item.content[0].text for item in after[:79]] == [f"note {n}" for n in range(80) if n != 3]
    assert len(after) == 80  # the answer too
    with pytest.raises(openai.NotFoundError):
        await client.conversations.items.retrieve(items[3].id, conversation_id=conversation.id)
    mine = set(await blob_names(azurite, server)) - before
    assert len(mine) == 1  # the turn's blob, rewritten without the item; the old one went
    await client.conversations.delete(conversation.id)
    assert not (set(await blob_names(azurite, server)) & mine)
    with pytest.raises(openai.NotFoundError):
        await client.conversations.items.list(conversation.id)


async def test_a_thousand_items_are_still_refused_and_nothing_is_stored(client, model):
    conversation = await client.conversations.create()
    with pytest.raises(openai.APIStatusError) as raised:
        await client.responses.create(
            model=model, conversation=conversation.id, input=[{"role": "user", "content": "x"}] * 1000
        )
    assert raised.value.status_code == 413 and raised.value.body["code"] == "input_too_large"
    assert (await client.conversations.items.list(conversation.id)).data == []
