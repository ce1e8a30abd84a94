"""Three instances of the app on one storage account behave as one service, end to end.

One user's turns, deletes and lists go round-robin and racing through three servers (the
`instances` fixture: one Azurite, one model stand-in), through both doors: the AI Chat Protocol
routes over HTTP and the OpenAI-compatible door with the official openai SDK. Every instance
serves the same whole history, the same list, and nothing an instance kept in memory (a window,
a list record) outlives a change another instance made.

The model stand-in answers `Echo #k: <user text>`, k being the number of history messages it was
sent, so an answer tells how much of the conversation the instance that served it read.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter

import openai
import pytest
from azure.data.tables import TableClient
from openai import AsyncOpenAI
from starlette.datastructures import Headers

from chat.engine.history import Conversation
from chat.storage import keys
from chat.web.callers import owner_of
from tests.support.api import Api, Reply
from tests.support.servers import AppServer
from tests.support.wire import ECHO

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

RACING = 12
ITEM_ROW = re.compile(r"t\d{16}")  # an item's row: its turn, its place, the row's number


@pytest.fixture
async def apis(instances, user):
    async with Api(instances[0].url, user) as a, Api(instances[1].url, user) as b, Api(instances[2].url, user) as c:
        yield [a, b, c]


async def history(api: Api, conversation: str) -> list[dict]:
    """The whole history as one instance serves it, oldest first, read a few at a time."""
    pages: list[list[dict]] = []
    cursor = None
    while True:
        reply = await api.messages(conversation, limit=5, **({"cursor": cursor} if cursor else {}))
        assert reply.status == 200, reply.body
        pages.append(reply.body["messages"])
        cursor = reply.body["next"]
        if cursor is None:
            return [message for page in reversed(pages) for message in page]


async def listing(api: Api) -> list[dict]:
    reply = await api.conversations(limit=100)
    assert reply.status == 200, reply.body
    assert reply.body["next"] is None
    return reply.body["conversations"]


async def the_same_everywhere(apis: list[Api], read) -> object:
    """What `read` gives on every instance, asserted to be the same on all of them."""
    seen = await asyncio.gather(*(read(api) for api in apis))
    assert all(other == seen[0] for other in seen[1:]), seen
    return seen[0]


def answer_of(reply: Reply) -> str:
    assert reply.status == 200, reply.body
    if reply.lines:
        assert "error" not in reply.lines[-1], reply.lines[-1]
        return reply.text
    return reply.body["message"]["content"]


def assert_whole_turns(messages: list[dict]) -> None:
    """User message, then its own answer, each answer read at most the turns stored before it."""
    assert [m["role"] for m in messages] == ["user", "assistant"] * (len(messages) // 2), messages
    for position in range(0, len(messages), 2):
        echo = ECHO.fullmatch(messages[position + 1]["content"])
        assert echo is not None and echo[2] == messages[position]["content"], messages[position : position + 2]
        assert int(echo[1]) <= position


def stored_turn_numbers(azurite, server: AppServer, user: dict[str, str], conversation: str) -> list[int]:
    """The turn number of each item stored in the conversation's partition, as Azurite holds them."""
    owner = owner_of(Headers(headers=user), trust_client_principal=True)
    name = server.env["CHAT_TABLE_PREFIX"] + "messages"
    partition = Conversation(owner, conversation).key
    with TableClient.from_connection_string(azurite.connection_string, table_name=name) as client:
        rows = client.query_entities("PartitionKey eq @pk", parameters={"pk": partition})
        places = [keys.parse_item_row_key(row["RowKey"]) for row in rows if ITEM_ROW.fullmatch(row["RowKey"])]
    return sorted(turn for turn, _, part in places if part == 0)


# -- the AI Chat Protocol door ----------------------------------------------------------------------


async def test_turns_round_robin_read_the_whole_history_on_every_instance(apis):
    conversation = f"19:{uuid.uuid4().hex}@thread.tacv2"
    for turn in range(9):
        api = apis[turn % 3]
        answer = answer_of(await api.chat(f"turn {turn}", conversation, stream=turn % 2 == 1))
        # Each instance read every message the others stored: no window it kept was stale.
        assert answer == f"Echo #{2 * turn}: turn {turn}"
        messages = await the_same_everywhere(apis, lambda a: history(a, conversation))
        assert [m["content"] for m in messages[-2:]] == [f"turn {turn}", answer]
        assert len(messages) == 2 * (turn + 1)
        assert_whole_turns(messages)
        [entry] = await the_same_everywhere(apis, listing)
        assert (entry["id"], entry["title"], entry["message_count"]) == (conversation, "turn 0", 2 * (turn + 1))


async def test_racing_turns_through_three_instances_lose_and_duplicate_nothing(apis, instances, azurite, user):
    conversation = f"racing-{uuid.uuid4().hex}"
    answer_of(await apis[0].chat("opening", conversation))
    contents = [f"racer {i} [[sleep:0.2]]" for i in range(RACING)]
    replies = await asyncio.gather(
        *(apis[i % 3].chat(content, conversation, stream=i % 2 == 0) for i, content in enumerate(contents))
    )
    answers = {content: answer_of(reply) for content, reply in zip(contents, replies, strict=True)}

    messages = await the_same_everywhere(apis, lambda a: history(a, conversation))
    assert_whole_turns(messages)
    users = Counter(m["content"] for m in messages if m["role"] == "user")
    assert users == Counter(["opening", *contents])  # each turn stored once
    for position in range(2, len(messages), 2):
        assert messages[position + 1]["content"] == answers[messages[position]["content"]]
    # One item a message, numbered 1, 2, 3... with no gap and no number used twice.
    numbers = stored_turn_numbers(azurite, instances[0], user, conversation)
    assert numbers == sorted([n for n in range(1, RACING + 2) for _ in range(2)])
    [entry] = await the_same_everywhere(apis, listing)
    assert (entry["title"], entry["message_count"]) == ("opening", 2 * (RACING + 1))


async def test_a_delete_through_one_instance_holds_on_every_instance(apis):
    conversation = f"deleted-{uuid.uuid4().hex}"
    kept = f"kept-{uuid.uuid4().hex}"
    answer_of(await apis[2].chat("another conversation", kept))
    # Every instance serves the conversation, so each keeps its window and its list record.
    for turn, api in enumerate(apis):
        answer_of(await api.chat(f"before {turn}", conversation))
        await the_same_everywhere(apis, lambda a: history(a, conversation))

    assert (await apis[1].delete(conversation)).status == 204
    for api in apis:
        gone = await api.messages(conversation)
        assert gone.status == 404 and gone.error_code == "conversation_not_found", gone.body
    assert [e["id"] for e in await the_same_everywhere(apis, listing)] == [kept]

    # The same ID starts afresh, whichever instance serves it: nothing of before is read.
    for turn, api in enumerate([apis[0], apis[2], apis[1]]):
        answer = answer_of(await api.chat(f"after {turn}", conversation, stream=turn == 1))
        assert answer == f"Echo #{2 * turn}: after {turn}"
    messages = await the_same_everywhere(apis, lambda a: history(a, conversation))
    assert [m["content"] for m in messages if m["role"] == "user"] == ["after 0", "after 1", "after 2"]
    entries = await the_same_everywhere(apis, listing)
    assert [(e["id"], e["title"], e["message_count"]) for e in entries] == [
        (conversation, "after 0", 6),
        (kept, "another conversation", 2),
    ]


async def test_deletes_racing_turns_on_three_instances_leave_one_story(apis):
    """Turns and deletes of one conversation at once on all three: whatever survives is whole
    turns, the same on every instance, and listed with its count, or the conversation is gone."""
    conversation = f"mixed-{uuid.uuid4().hex}"
    answer_of(await apis[0].chat("opening", conversation))
    work = [apis[i % 3].chat(f"mixed {i} [[sleep:0.1]]", conversation, stream=i % 2 == 1) for i in range(6)]
    work += [apis[i].delete(conversation) for i in range(3)]
    replies = await asyncio.gather(*work)
    for reply in replies[:6]:
        assert reply.status in (200, 404), reply.body
    assert all(reply.status == 204 for reply in replies[6:])

    first = await apis[0].messages(conversation)
    if first.status == 404:
        for api in apis:
            assert (await api.messages(conversation)).status == 404
        assert await the_same_everywhere(apis, listing) == []
        return
    messages = await the_same_everywhere(apis, lambda a: history(a, conversation))
    assert_whole_turns(messages)
    [entry] = await the_same_everywhere(apis, listing)
    assert entry["message_count"] == len(messages)


# -- the OpenAI-compatible door, with the openai SDK --------------------------------------------------


async def items_of(sdk: AsyncOpenAI, conversation: str) -> list[tuple[str, str, str]]:
    """Every item of the conversation, oldest first, as (ID, role, text)."""
    page = await sdk.conversations.items.list(conversation, order="asc", limit=100)
    assert not page.has_more
    return [(str(item.id), str(item.role), item.content[0].text) for item in page.data]  # type: ignore[union-attr,index]


async def test_responses_round_robin_share_one_conversation(sdks, apis, standins):
    conversation = await sdks[0].conversations.create(metadata={"topic": "instances"})
    for turn in range(6):
        response = await sdks[turn % 3].responses.create(
            model=standins.deployment, conversation=conversation.id, input=f"question {turn}"
        )
        assert response.output_text == f"Echo #{2 * turn}: question {turn}"
        items = await the_same_everywhere(sdks, lambda s: items_of(s, conversation.id))
        assert [text for _, _, text in items][-2:] == [f"question {turn}", response.output_text]
        assert len(items) == 2 * (turn + 1)
    # The chat door on every instance serves the same conversation.
    messages = await the_same_everywhere(apis, lambda a: history(a, conversation.id))
    assert [m["content"] for m in messages] == [text for _, _, text in items]
    [entry] = await the_same_everywhere(apis, listing)
    assert entry["message_count"] == 12
    for sdk in sdks:
        assert (await sdk.conversations.retrieve(conversation.id)).metadata == {"topic": "instances"}


async def test_an_item_deleted_through_one_instance_is_gone_and_uncounted_on_every_instance(sdks, apis, standins):
    conversation = await sdks[0].conversations.create()
    for turn in range(3):
        await sdks[turn].responses.create(
            model=standins.deployment, conversation=conversation.id, input=f"question {turn}"
        )
    items = await the_same_everywhere(sdks, lambda s: items_of(s, conversation.id))
    [entry] = await the_same_everywhere(apis, listing)
    assert entry["message_count"] == 6

    forgotten_id, _, forgotten = items[2]  # "question 1"
    await sdks[1].conversations.items.delete(forgotten_id, conversation_id=conversation.id)
    left = await the_same_everywhere(sdks, lambda s: items_of(s, conversation.id))
    assert left == [item for item in items if item[0] != forgotten_id]
    for sdk in sdks:
        with pytest.raises(openai.NotFoundError):
            await sdk.conversations.items.retrieve(forgotten_id, conversation_id=conversation.id)
    # The list is recounted: every instance lists 5 messages, not the 6 there were.
    [entry] = await the_same_everywhere(apis, listing)
    assert entry["message_count"] == 5

    # Every instance's next turn reads the conversation without the item (no window kept from before).
    for turn, sdk in enumerate([sdks[0], sdks[2], sdks[1]]):
        response = await sdk.responses.create(
            model=standins.deployment, conversation=conversation.id, input=f"after {turn}"
        )
        assert response.output_text == f"Echo #{5 + 2 * turn}: after {turn}"
        requests = [e["body"]["messages"] for e in standins.requests()]
        sent = next(m for m in reversed(requests) if m[-1]["content"] == f"after {turn}")
        assert forgotten not in [message["content"] for message in sent]
    [entry] = await the_same_everywhere(apis, listing)
    assert entry["message_count"] == 11


async def test_racing_responses_through_three_instances_lose_and_duplicate_nothing(sdks, apis, standins):
    conversation = await sdks[0].conversations.create()
    inputs = [f"racing response {i} [[sleep:0.2]]" for i in range(RACING)]

    async def respond(i: int) -> str:
        sdk = sdks[i % 3]
        if i % 2:
            async with sdk.responses.stream(
                model=standins.deployment, conversation=conversation.id, input=inputs[i]
            ) as stream:
                return (await stream.get_final_response()).output_text
        response = await sdk.responses.create(model=standins.deployment, conversation=conversation.id, input=inputs[i])
        return response.output_text

    answers = await asyncio.gather(*(respond(i) for i in range(RACING)))
    items = await the_same_everywhere(sdks, lambda s: items_of(s, conversation.id))
    assert Counter(text for _, role, text in items if role == "user") == Counter(inputs)
    assert sorted(text for _, role, text in items if role == "assistant") == sorted(answers)
    assert len({item_id for item_id, _, _ in items}) == len(items) == 2 * RACING
    messages = await the_same_everywhere(apis, lambda a: history(a, conversation.id))
    assert_whole_turns(messages)
    [entry] = await the_same_everywhere(apis, listing)
    assert entry["message_count"] == 2 * RACING


async def test_a_conversation_deleted_through_one_instance_is_gone_from_every_instance(sdks, apis, standins):
    conversation = await sdks[0].conversations.create(items=[{"type": "message", "role": "user", "content": "hi"}])
    for sdk in sdks:
        await sdk.responses.create(model=standins.deployment, conversation=conversation.id, input="and?")
    deleted = await sdks[2].conversations.delete(conversation.id)
    assert deleted.deleted
    for sdk in sdks:
        with pytest.raises(openai.NotFoundError):
            await sdk.conversations.retrieve(conversation.id)
    assert await the_same_everywhere(apis, listing) == []
