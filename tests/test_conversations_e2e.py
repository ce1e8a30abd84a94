"""Listing, paging and deleting conversations, end to end over HTTP and checked in Azurite.

Each test signs in a user of its own (a trusted client principal), so it sees only its own
conversations, whatever other tests stored.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime

import pytest
from azure.data.tables import TableClient
from azure.data.tables.aio import TableClient as AsyncTableClient
from starlette.datastructures import Headers

from chat.engine.history import Conversation
from chat.storage import keys
from chat.storage.messages import TurnStore
from chat.storage.tables import Table
from chat.web.callers import owner_of
from tests.support.api import Api
from tests.support.servers import AppServer
from tests.support.turns import chat_turn
from tests.support.wire import PRINCIPAL

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ITEM_FIELDS = {"id", "title", "created_at", "updated_at", "message_count"}


@pytest.fixture
async def user(trusted_server):
    """A user signed in through Static Web Apps, new to this test."""
    principal = {"identityProvider": "aad", "userId": uuid.uuid4().hex, "userDetails": "ada", "userRoles": []}
    headers = {PRINCIPAL: base64.b64encode(json.dumps(principal).encode()).decode()}
    async with Api(trusted_server.url, headers=headers) as api:
        yield api


async def say(api: Api, content: str, conversation_id: str | None = None, *, stream: bool = False) -> str:
    """One turn; the conversation's ID."""
    reply = await api.chat(content, conversation_id, stream=stream)
    assert reply.status == 200, reply.body
    return reply.lines[0]["sessionState"] if stream else reply.body["sessionState"]


async def listing(api: Api, **params) -> list[dict]:
    reply = await api.conversations(**params)
    assert reply.status == 200, reply.body
    return reply.body["conversations"]


async def walk(fetch, limit: int, between_pages=None) -> tuple[list[list], list]:
    """Follow `next` from the first page to the end: every page's items and the cursors seen."""
    pages, cursors, cursor = [], [], None
    while True:
        params = {"limit": limit} if cursor is None else {"limit": limit, "cursor": cursor}
        reply = await fetch(**params)
        assert reply.status == 200, reply.body
        items = reply.body["conversations"] if "conversations" in reply.body else reply.body["messages"]
        pages.append(items)
        cursor = reply.body["next"]
        if cursor is None:
            return pages, cursors
        cursors.append(cursor)
        if between_pages is not None and len(pages) == 1:
            await between_pages()


def instant(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


# -- GET /api/conversations ----------------------------------------------------------------


async def test_the_list_is_in_order_of_latest_activity(user):
    first = await say(user, "first conversation")
    second = await say(user, "second conversation")
    third = await say(user, "third conversation")
    before = {c["id"]: c for c in await listing(user)}
    assert list(before) == [third, second, first]

    await say(user, "back to the first", first)
    after = await listing(user)
    assert [c["id"] for c in after] == [first, third, second]
    moved = after[0]
    assert moved["created_at"] == before[first]["created_at"]
    assert instant(moved["updated_at"]) > instant(before[first]["updated_at"])
    assert moved["message_count"] == 4 and moved["title"] == "first conversation"
    assert after[1:] == [before[third], before[second]]

    await say(user, "and back to the second, streamed", second, stream=True)
    assert [c["id"] for c in await listing(user)] == [second, first, third]


@pytest.mark.parametrize(
    ("first_message", "title"),
    [
        ("Plan a trip", "Plan a trip"),
        ("  Plan\ta   trip\n\nto  Lisbon \r\n", "Plan a trip to Lisbon"),
        ("x" * 80, "x" * 80),
        ("会話" * 40, "会話" * 40),
    ],
    ids=["short", "whitespace", "80 characters", "80 non-ascii characters"],
)
async def test_the_title_is_the_first_message(user, first_message, title):
    conversation = await say(user, first_message)
    await say(user, "a second message does not rename it", conversation)
    [item] = await listing(user)
    assert set(item) == ITEM_FIELDS
    assert item["id"] == conversation and item["title"] == title and item["message_count"] == 4


@pytest.mark.parametrize(
    "first_message",
    ["y" * 81, "word " * 40, "  Long \n\n " + "lines\tand  tabs " * 12, "😀" * 200],
    ids=["81 characters", "many words", "whitespace", "emoji"],
)
async def test_a_long_first_message_is_shortened_with_an_ellipsis(user, first_message):
    await say(user, first_message)
    [item] = await listing(user)
    title = item["title"]
    assert len(title) <= 80 and title.endswith("…")
    assert " ".join(first_message.split()).startswith(title[:-1])
    assert len(title) >= 70, "shortened far more than it needed"


async def test_each_item_has_its_times_and_count(user):
    conversation = await say(user, "count me")
    [created] = await listing(user)
    assert created["created_at"] == created["updated_at"] and created["message_count"] == 2
    for i in range(2):
        await say(user, f"more {i}", conversation)
    [item] = await listing(user)
    assert item["message_count"] == 6
    assert item["created_at"] == created["created_at"]
    assert instant(item["updated_at"]) > instant(item["created_at"])
    messages = (await user.messages(conversation)).body["messages"]
    assert item["created_at"] == messages[0]["created_at"] and item["updated_at"] == messages[-1]["created_at"]


@pytest.mark.parametrize(("count", "limit"), [(25, 7), (6, 3), (3, 200)])
async def test_pages_walk_every_conversation_exactly_once(user, count, limit):
    created = [await say(user, f"conversation {i}") for i in range(count)]
    pages, cursors = await walk(user.conversations, limit)
    sizes = [len(page) for page in pages]
    assert sizes == [limit] * (count // limit) + ([count % limit] if count % limit else [])
    ids = [c["id"] for page in pages for c in page]
    assert ids == created[::-1]
    assert ids == [c["id"] for c in await listing(user, limit=200)]
    assert len(set(cursors)) == len(cursors)


async def test_a_conversation_that_moves_during_a_walk_is_not_listed_twice(user):
    created = [await say(user, f"conversation {i}") for i in range(10)]
    newest_first = created[::-1]

    async def continue_one_already_seen():
        await say(user, "moves to the top", newest_first[1])

    pages, _ = await walk(user.conversations, 3, between_pages=continue_one_already_seen)
    ids = [c["id"] for page in pages for c in page]
    assert ids == newest_first
    assert [c["id"] for c in await listing(user)] == [newest_first[1], newest_first[0], *newest_first[2:]]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("limit=0", "invalid_limit"),
        ("limit=201", "invalid_limit"),
        ("limit=seven", "invalid_limit"),
        ("cursor=!!!", "invalid_cursor"),
        ("cursor=", None),
    ],
)
async def test_list_paging_parameters_are_checked(user, query, code):
    await say(user, "something to list")
    reply = await user.request("GET", f"/api/conversations?{query}")
    if code is None:
        assert reply.status == 200 and len(reply.body["conversations"]) == 1
    else:
        assert reply.status == 400 and reply.error_code == code


async def test_a_cursor_pages_only_the_list_it_came_from(user):
    conversation = await say(user, "one")
    await say(user, "two", conversation)
    await say(user, "another conversation")
    messages_cursor = (await user.messages(conversation, limit=1)).body["next"]
    list_cursor = (await user.conversations(limit=1)).body["next"]
    assert messages_cursor and list_cursor
    for reply in (
        await user.conversations(cursor=messages_cursor),
        await user.messages(conversation, cursor=list_cursor),
    ):
        assert reply.status == 400 and reply.error_code == "invalid_cursor"


async def test_a_new_user_has_an_empty_list(user):
    reply = await user.conversations()
    assert reply.status == 200 and reply.body == {"conversations": [], "next": None}


# -- GET /api/conversations/{id}/messages -------------------------------------------------------


def expected_messages(turns: int) -> list[tuple[str, str]]:
    messages = []
    for i in range(turns):
        messages += [("user", f"message {i}"), ("assistant", f"Echo #{2 * i}: message {i}")]
    return messages


async def test_message_pages_walk_the_whole_conversation_from_the_newest(user):
    conversation = await say(user, "message 0")
    for i in range(1, 12):
        await say(user, f"message {i}", conversation)
    everything = expected_messages(12)  # 24 messages

    async def fetch(**params):
        return await user.messages(conversation, **params)

    for limit in (1, 2, 5, 7, 23, 24, 25, 200):
        pages, _ = await walk(fetch, limit)
        sizes = [len(page) for page in pages]
        assert sizes == [limit] * (24 // limit) + ([24 % limit] if 24 % limit else []), f"limit {limit}"
        walked = [(m["role"], m["content"]) for page in reversed(pages) for m in page]
        assert walked == everything, f"limit {limit}"
        newest = [(m["role"], m["content"]) for m in pages[0]]
        assert newest == everything[-len(pages[0]) :], f"limit {limit}: the first page is not the newest"

    first_page = (await user.messages(conversation, limit=5)).body
    assert first_page["sessionState"] == conversation
    assert [m["role"] for m in first_page["messages"]] == ["assistant", "user", "assistant", "user", "assistant"]
    for message in first_page["messages"]:
        assert instant(message["created_at"])
        if message["role"] == "assistant":
            assert message["context"]["finish_reason"] == "stop"
            assert message["context"]["usage"]["completion_tokens"] > 0
        else:
            assert "context" not in message
    default_page = (await user.messages(conversation)).body
    assert len(default_page["messages"]) == 24 and default_page["next"] is None


async def test_a_turn_added_during_a_walk_is_not_repeated(user):
    conversation = await say(user, "message 0")
    for i in range(1, 4):
        await say(user, f"message {i}", conversation)

    async def fetch(**params):
        return await user.messages(conversation, **params)

    async def add_a_turn():
        await say(user, "message 4", conversation)

    pages, _ = await walk(fetch, 3, between_pages=add_a_turn)
    walked = [(m["role"], m["content"]) for page in reversed(pages) for m in page]
    assert walked == expected_messages(4)
    assert [(m["role"], m["content"]) for m in (await fetch()).body["messages"]] == expected_messages(5)


# -- DELETE /api/conversations/{id} -------------------------------------------------------------


def rows_in_azurite(azurite, server: AppServer, table: str, partition: str) -> list[dict]:
    name = server.env["CHAT_TABLE_PREFIX"] + table
    with TableClient.from_connection_string(azurite.connection_string, table_name=name) as client:
        return list(client.query_entities("PartitionKey eq @pk", parameters={"pk": partition}))


async def seed_turns(azurite, server: AppServer, conversation: Conversation, numbers: range) -> None:
    """Store turns straight into the server's tables, as the app stores them."""
    prefix = server.env["CHAT_TABLE_PREFIX"]
    store = TurnStore(
        Table(AsyncTableClient.from_connection_string(azurite.connection_string, table_name=prefix + "messages"))
    )
    try:
        for n in numbers:
            head = await store.read_head(conversation)
            assert head.latest_turn == n - 1
            await store.append_turn(conversation, head, chat_turn(f"turn {n}", f"answer {n}"))
    finally:
        await store.close()


async def test_delete_removes_every_row_and_the_id_starts_afresh(user, trusted_server, azurite):
    owner = owner_of(Headers(headers=user.headers), trust_client_principal=True)
    conversation = f"19:abc@thread.tacv2;messageid={uuid.uuid4().int}"
    sibling = await say(user, "a conversation that stays")
    await say(user, "turn 1", conversation)
    await seed_turns(azurite, trusted_server, Conversation(owner, conversation), range(2, 56))
    last = await user.chat("turn 56", conversation)  # 112 messages: more than one transaction of deletes
    assert last.body["message"]["content"] == "Echo #110: turn 56"
    partition = Conversation(owner, conversation).key
    stored = rows_in_azurite(azurite, trusted_server, "messages", partition)
    assert len(stored) == 225  # 112 message rows, an index row for each, and the head
    assert [(r["n"], r["floor"]) for r in stored if r["RowKey"] == keys.HEAD_ROW_KEY] == [(56, 0)]
    [listed] = [c for c in await listing(user) if c["id"] == conversation]
    assert listed["message_count"] == 112

    reply = await user.delete(conversation)
    assert reply.status == 204 and reply.body is None

    # Only the head is left: it keeps the floor, so the turn numbers are never used again.
    [head] = rows_in_azurite(azurite, trusted_server, "messages", partition)
    assert set(head) == {"PartitionKey", "RowKey", "n", "floor", "items"}
    assert head["items"] == 0
    assert (head["RowKey"], head["n"], head["floor"]) == (keys.HEAD_ROW_KEY, 57, 57)
    owner_rows = rows_in_azurite(azurite, trusted_server, "conversations", keys.owner_partition(owner))
    assert {row["id"] for row in owner_rows if "id" in row} == {sibling}
    assert (await user.messages(conversation)).status == 404
    assert [c["id"] for c in await listing(user)] == [sibling]
    assert len((await user.messages(sibling)).body["messages"]) == 2

    again = await user.delete(conversation)
    assert again.status == 204 and again.body is None

    fresh = await user.chat("a new beginning", conversation)
    assert fresh.body["message"]["content"] == "Echo #0: a new beginning"
    assert [m["content"] for m in (await user.messages(conversation)).body["messages"]] == [
        "a new beginning",
        "Echo #0: a new beginning",
    ]
    [restarted, _] = await listing(user)
    assert restarted["id"] == conversation and restarted["message_count"] == 2
    assert restarted["title"] == "a new beginning"
    assert instant(restarted["created_at"]) > instant(listed["created_at"])


async def test_deleting_a_conversation_never_used_is_204(user):
    reply = await user.delete(f"never used {uuid.uuid4().hex}")
    assert reply.status == 204 and reply.body is None


# -- one reading of a path ---------------------------------------------------------------------


async def test_a_trailing_slash_deletes_nothing(user):
    """`DELETE /api/conversations/{id}/` once answered 204 and deleted the conversation "{id}/"."""
    await say(user, "keep me", "kept")
    await say(user, "keep me too", "kept/")
    reply = await user.request("DELETE", "/api/conversations/kept/")
    assert reply.status == 404 and reply.error_code == "not_found"
    for conversation in ("kept", "kept/"):
        stored = await user.messages(conversation)
        assert stored.status == 200 and len(stored.body["messages"]) == 2, conversation
    assert {c["id"] for c in await listing(user)} == {"kept", "kept/"}


@pytest.mark.parametrize(
    ("method", "path", "stored_as"),
    [
        ("GET", "//api/conversations/x/messages", "conversations/x"),
        ("GET", "/api//conversations/x/messages", "conversations/x"),
        ("GET", "/api/conversations/x/messages/", "x/messages/"),
        ("GET", "/api/conversations/x//messages", "x/"),
        ("GET", "/api/conversations/./messages", "."),
        ("GET", "/api/conversations/../messages", ".."),
        ("DELETE", "/api/conversations/x//", "x//"),
        ("DELETE", "//api/conversations/x", "conversations/x"),
        ("DELETE", "/api/conversations/.", "."),
    ],
)
async def test_a_path_with_an_empty_or_dot_segment_matches_no_route(user, method, path, stored_as):
    """Such a path once named a conversation its segments do not: the ID was read from the rest of
    the path, slashes and all. Now it is a 404, and the conversation it would have named is kept."""
    await say(user, "a conversation a bad path could name", stored_as)
    reply = await user.request(method, path)
    assert reply.status == 404 and reply.error_code == "not_found"
    stored = await user.messages(stored_as)
    assert stored.status == 200 and len(stored.body["messages"]) == 2
    assert [c["id"] for c in await listing(user)] == [stored_as]


@pytest.mark.parametrize("path", ["/api/chat/", "//api/chat", "/api//chat/stream", "/api/chat/stream/"])
async def test_a_turn_on_a_path_with_an_empty_segment_is_a_404_and_stores_nothing(user, standins, path):
    calls = len(standins.requests())
    reply = await user.request("POST", path, json_body={"messages": [{"role": "user", "content": "hi"}]})
    assert reply.status == 404 and reply.error_code == "not_found"
    assert len(standins.requests()) == calls
    assert await listing(user) == []
