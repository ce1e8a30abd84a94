"""Faults around a turn, end to end: a client that leaves mid-stream, and Table Storage that goes
away between turns or between the model's answer and the write.

Storage outages use an Azurite of their own that keeps its data on disk, so it can be stopped and
started again on the same port with the conversations it held.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from standins.completion import long_text
from tests.support.api import Api
from tests.support.azurite import Azurite
from tests.support.servers import AppServer, app_env

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

WAIT_SECONDS = 30
# A held answer waits from the model's request until storage has stopped, which on a busy machine
# can outlast the 3-second model timeout of the other servers; this one must not time out first.
MODEL_TIMEOUT_SECONDS = 2 * WAIT_SECONDS


def new_session() -> str:
    return f"resilience-{uuid.uuid4().hex}"


async def stored(api, session: str) -> list[tuple[str, str]]:
    reply = await api.messages(session, limit=200)
    assert reply.status == 200, reply.body
    return [(m["role"], m["content"]) for m in reply.body["messages"]]


async def wait_until(condition, what: str) -> None:
    """Poll an async condition until it holds; a bounded wait, not a timing assertion."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while not await condition():
        assert loop.time() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.1)


# -- a client that leaves -----------------------------------------------------------------------


async def test_a_client_that_leaves_mid_stream_still_gets_the_whole_answer_stored(server, api, standins):
    session = new_session()
    length = 30_000
    content = f"a long story please [[long:{length}]] [[chunk-delay:100]]"
    document = {"messages": [{"role": "user", "content": content}], "sessionState": session}

    async with (
        aiohttp.ClientSession() as client,
        client.post(f"{server.url}/api/chat/stream", json=document) as response,
    ):
        assert response.status == 200
        opening = json.loads(await response.content.readline())
        first = json.loads(await response.content.readline())
        response.close()  # the client goes away with the answer half told
    assert opening == {"delta": {"role": "assistant"}, "sessionState": session}
    received = first["delta"]["content"]
    assert 0 < len(received) < length

    async def answer_stored() -> bool:
        reply = await api.messages(session)
        return reply.status == 200 and len(reply.body["messages"]) == 2

    await wait_until(answer_stored, "the answer of the departed client to be stored")
    user, assistant = (await api.messages(session)).body["messages"]
    assert user["content"] == content
    assert assistant["content"] == long_text(length)
    assert assistant["content"].startswith(received)
    assert assistant["context"]["finish_reason"] == "stop"
    assert sum(1 for e in standins.requests() if e["body"]["messages"][-1]["content"] == content) == 1


# -- storage that goes away ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    instance = Azurite(location=tmp_path_factory.mktemp("azurite")).start()
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def storage_server(standins, storage):
    env = app_env(standins, storage.connection_string, CHAT_MODEL_TIMEOUT_SECONDS=str(MODEL_TIMEOUT_SECONDS))
    instance = AppServer(env).start()
    yield instance
    instance.stop()


@pytest.fixture
async def storage_api(storage_server):
    async with Api(storage_server.url) as client:
        yield client


@asynccontextmanager
async def outage(storage: Azurite) -> AsyncIterator[None]:
    """Storage is down inside the block and back, with its data, after it.

    Azurite stops and starts in a thread of its own (a start takes seconds on a busy machine),
    so the test's event loop goes on serving its connections and the turns in flight meanwhile.
    """
    await asyncio.to_thread(storage.stop)
    try:
        yield
    finally:
        await asyncio.to_thread(storage.start)


def model_saw(standins, marker: str) -> list[str]:
    return [
        e["body"]["messages"][-1]["content"]
        for e in standins.requests()
        if marker in e["body"]["messages"][-1]["content"]
    ]


async def test_while_storage_is_down_turns_fail_fast_without_calling_the_model(storage, storage_api, standins):
    api = storage_api
    session = new_session()
    assert (await api.chat("before the outage", session)).status == 200
    marker = f"[{uuid.uuid4().hex}]"

    async with outage(storage):
        failures = [
            await api.chat(f"during the outage {marker}", session),
            await api.chat(f"during the outage, streamed {marker}", session, stream=True),
            await api.chat(f"a new conversation {marker}"),
            await api.messages(session),
            await api.conversations(),
        ]
        health = await api.request("GET", "/api/health")

    for reply in failures:
        assert reply.status == 503 and reply.error_code == "storage_unavailable", reply.body
        assert reply.headers["Content-Type"].startswith("application/json")
    assert health.status == 503
    assert health.body["checks"]["storage"] == "storage_unavailable"
    assert model_saw(standins, marker) == []

    last = await api.chat("after the outage", session)
    assert last.status == 200, last.body
    assert last.body["message"]["content"] == "Echo #2: after the outage"
    assert await stored(api, session) == [
        ("user", "before the outage"),
        ("assistant", "Echo #0: before the outage"),
        ("user", "after the outage"),
        ("assistant", "Echo #2: after the outage"),
    ]
    health = await api.request("GET", "/api/health")
    assert health.body["checks"]["storage"] == "ok"


async def test_storage_lost_between_the_answer_and_the_write_stores_nothing_of_the_turn(storage, storage_api, standins):
    api = storage_api
    json_session, stream_session = new_session(), new_session()
    for session in (json_session, stream_session):
        assert (await api.chat("before", session)).status == 200
    marker, hold = f"[{uuid.uuid4().hex}]", f"hold-{uuid.uuid4().hex}"
    # Both answers are held until storage is down, so neither can be stored before the outage.
    json_content = f"a held answer {marker} [[hold:{hold}]]"
    stream_content = f"a held streamed answer {marker} [[hold:{hold}]]"

    json_turn = asyncio.create_task(api.chat(json_content, json_session))
    stream_turn = asyncio.create_task(api.chat(stream_content, stream_session, stream=True))

    async def both_asked() -> bool:
        return len(model_saw(standins, marker)) == 2

    await wait_until(both_asked, "the model to be asked both turns")
    async with outage(storage):
        standins.model.holds.release(hold)
        json_reply, stream_reply = await asyncio.gather(json_turn, stream_turn)

    assert json_reply.status == 503 and json_reply.error_code == "storage_unavailable", json_reply.body
    assert stream_reply.status == 200
    assert stream_reply.lines[0] == {"delta": {"role": "assistant"}, "sessionState": stream_session}
    assert stream_reply.text == f"Echo #2: {stream_content}"
    assert stream_reply.lines[-1]["error"]["code"] == "storage_unavailable"
    assert not any("context" in line for line in stream_reply.lines)

    for session in (json_session, stream_session):
        assert await stored(api, session) == [("user", "before"), ("assistant", "Echo #0: before")]
    listing = await api.conversations(limit=200)
    counts = {c["id"]: c["message_count"] for c in listing.body["conversations"]}
    assert counts[json_session] == counts[stream_session] == 2
