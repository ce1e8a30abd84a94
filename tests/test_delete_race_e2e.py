"""A delete wins over the turns in flight when it happens, end to end over HTTP and in Azurite.

A turn whose model call was under way when DELETE answered 204 is not stored after it, whether
its client waits (JSON or stream) or has left (the stream's answer drains by itself); nothing of
the deleted conversation comes back in its history or in the list, and the same ID then starts a
fresh conversation. The model stand-in's `[[hold:NAME]]` keeps answers back until the test
releases them, so each turn is known to be in flight when the delete happens.

Each test signs in a user of its own, so the list it reads holds only its own conversations.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import aiohttp
import pytest
from azure.data.tables import TableClient
from starlette.datastructures import Headers

from chat.engine.history import Conversation
from chat.storage import keys
from chat.web.callers import owner_of
from tests.support.api import Api, Reply
from tests.support.servers import AppServer, app_env

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

WAIT_SECONDS = 30
# A held answer waits until the test has seen all its turns reach the model and the delete answer,
# which on a busy machine can outlast the 3-second model timeout of the other servers; a turn that
# timed out would end as model_timeout, neither stored nor deleted.
MODEL_TIMEOUT_SECONDS = 2 * WAIT_SECONDS
FORGOTTEN = "the first message, which the user wants gone"


@pytest.fixture(scope="module")
def race_server(standins, azurite):
    """The app as the trusted_server fixture runs it, with a model timeout longer than any hold."""
    env = app_env(
        standins,
        azurite.connection_string,
        CHAT_TRUST_CLIENT_PRINCIPAL="true",
        WEBSITE_AUTH_ENABLED="True",
        CHAT_MODEL_TIMEOUT_SECONDS=str(MODEL_TIMEOUT_SECONDS),
    )
    instance = AppServer(env).start()
    yield instance
    instance.stop()


@pytest.fixture
async def user(race_server):
    principal = {"identityProvider": "aad", "userId": uuid.uuid4().hex, "userDetails": "ada", "userRoles": []}
    headers = {"x-ms-client-principal": base64.b64encode(json.dumps(principal).encode()).decode()}
    async with Api(race_server.url, headers=headers) as api:
        yield api


def hold() -> str:
    return f"hold-{uuid.uuid4().hex}"


async def until_held(standins, name: str, count: int) -> None:
    """Wait, bounded, until `count` model answers are held under `name`: those turns are in flight."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while standins.model.holds.waiting(name) < count:
        assert loop.time() < deadline, f"{count} turns did not reach the model"
        await asyncio.sleep(0.05)


async def start_conversation(user: Api) -> str:
    conversation = f"19:{uuid.uuid4().hex}@thread.tacv2"
    reply = await user.chat(FORGOTTEN, conversation)
    assert reply.status == 200, reply.body
    return conversation


def outcome(reply: Reply) -> str:
    """The turn's fate: "stored" if answered in full, "deleted" if refused because of the delete."""
    if reply.lines:
        assert reply.status == 200
        last = reply.lines[-1]
        if "error" in last:
            assert last["error"]["code"] == "conversation_not_found", last
            return "deleted"
        assert last["context"]["finish_reason"] == "stop", last
        return "stored"
    if reply.status == 404:
        assert reply.error_code == "conversation_not_found", reply.body
        return "deleted"
    assert reply.status == 200, reply.body
    return "stored"


def rows(azurite, server: AppServer, table: str, partition: str) -> list[dict]:
    name = server.env["CHAT_TABLE_PREFIX"] + table
    with TableClient.from_connection_string(azurite.connection_string, table_name=name) as client:
        return list(client.query_entities("PartitionKey eq @pk", parameters={"pk": partition}))


async def assert_gone(user: Api, conversation: str, azurite, server: AppServer) -> None:
    """Nothing of the conversation is readable, listed, or stored with any of its text."""
    messages = await user.messages(conversation)
    assert messages.status == 404, messages.body
    listing = await user.conversations()
    assert listing.status == 200 and listing.body["conversations"] == [], listing.body
    owner = owner_of(Headers(headers=user.headers), trust_client_principal=True)
    stored = rows(azurite, server, "messages", Conversation(owner, conversation).key)
    stored += rows(azurite, server, "conversations", keys.owner_partition(owner))
    leftovers = [row for row in stored if any(isinstance(v, str) and FORGOTTEN in v for v in row.values())]
    assert leftovers == []


async def assert_starts_afresh(user: Api, conversation: str) -> None:
    """The same ID, used again, is a new and empty conversation that works."""
    fresh = await user.chat("a new beginning", conversation)
    assert fresh.status == 200, fresh.body
    assert fresh.body["message"]["content"] == "Echo #0: a new beginning"
    messages = (await user.messages(conversation)).body["messages"]
    assert [m["content"] for m in messages] == ["a new beginning", "Echo #0: a new beginning"]
    [entry] = (await user.conversations()).body["conversations"]
    assert (entry["id"], entry["title"], entry["message_count"]) == (conversation, "a new beginning", 2)
    again = await user.chat("and then?", conversation, stream=True)
    assert again.text == "Echo #2: and then?"
    [entry] = (await user.conversations()).body["conversations"]
    assert (entry["title"], entry["message_count"]) == ("a new beginning", 4)


async def test_a_json_turn_in_flight_is_not_stored_after_the_delete(user, standins, azurite, race_server):
    conversation = await start_conversation(user)
    name = hold()
    turn = asyncio.ensure_future(user.chat(f"a second message [[hold:{name}]]", conversation))
    await until_held(standins, name, 1)

    deleted = await user.delete(conversation)
    assert deleted.status == 204
    standins.model.holds.release(name)

    assert outcome(await turn) == "deleted"
    await assert_gone(user, conversation, azurite, race_server)
    await assert_starts_afresh(user, conversation)


async def test_a_stream_left_by_its_client_is_not_stored_after_the_delete(user, standins, azurite, race_server):
    conversation = await start_conversation(user)
    name = hold()
    document = {
        "messages": [{"role": "user", "content": f"tell me more [[hold:{name}]]"}],
        "sessionState": conversation,
    }
    # A server of its own on the same tables: stopping it waits for the answers it still drains.
    # It starts and stops in a thread, so the test's event loop goes on serving its connections.
    draining = await asyncio.to_thread(AppServer(dict(race_server.env)).start)
    try:
        async with (
            aiohttp.ClientSession(headers=user.headers) as client,
            client.post(f"{draining.url}/api/chat/stream", json=document) as response,
        ):
            assert response.status == 200
            opening = json.loads(await response.content.readline())
            first = json.loads(await response.content.readline())
            response.close()  # the client goes away; the answer drains on
        assert opening["sessionState"] == conversation and first["delta"]["content"]
        await until_held(standins, name, 1)

        deleted = await user.delete(conversation)
        assert deleted.status == 204
        standins.model.holds.release(name)
    finally:
        await asyncio.to_thread(draining.stop)

    await assert_gone(user, conversation, azurite, race_server)
    await assert_starts_afresh(user, conversation)


async def test_a_delete_racing_eight_concurrent_turns_wins(user, standins, azurite, race_server):
    """Four turns are let go as the delete starts and race it and each other; four more only after
    the delete answered. Each turn is stored before the delete (and deleted with it) or refused."""
    conversation = await start_conversation(user)
    early, late = hold(), hold()
    contents = [f"turn {i} [[hold:{early if i < 4 else late}]]" for i in range(8)]
    turns = [
        asyncio.ensure_future(user.chat(content, conversation, stream=i % 2 == 1)) for i, content in enumerate(contents)
    ]
    await until_held(standins, early, 4)
    await until_held(standins, late, 4)

    standins.model.holds.release(early)
    deleted = await user.delete(conversation)
    assert deleted.status == 204
    standins.model.holds.release(late)

    outcomes = [outcome(reply) for reply in await asyncio.gather(*turns)]
    assert outcomes[4:] == ["deleted"] * 4
    await assert_gone(user, conversation, azurite, race_server)
    await assert_starts_afresh(user, conversation)
