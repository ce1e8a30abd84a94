"""How the app talks to Table Storage, end to end on Azurite: bursts of turns with idle gaps
between them (Azurite closes a connection idle for 5 seconds), a table deleted under a running
app, and a storage endpoint that accepts connections and never answers."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import pytest
from azure.data.tables.aio import TableServiceClient

from tests.support.api import Api
from tests.support.azurite import AZURITE_ACCOUNT, AZURITE_KEY
from tests.support.servers import AppServer, app_env
from tests.support.stale_proxy import StaleProxy

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

BURST = 128
ROUNDS = 3
# Azurite closes a connection idle this long; the proxy closes it when the next request comes.
SERVER_IDLE_SECONDS = 5
# Longer than Azurite keeps an idle connection, shorter than aiohttp's default pool keeps it (15 s).
IDLE_SECONDS = 6.5


@contextmanager
def served(env: dict[str, str]) -> Iterator[AppServer]:
    server = AppServer(env).start()
    try:
        yield server
    finally:
        server.stop()


async def turns_in_bursts(api, sessions: list[str], rounds: int, idle_seconds: float, directive: str = ""):
    """`rounds` bursts of one turn in each conversation, all at once, with an idle gap between;
    then every conversation's messages and the caller's list. `directive` goes to the model stand-in."""
    for round_ in range(rounds):
        if round_:
            await asyncio.sleep(idle_seconds)  # the pool's connections go stale: waiting, not a timing assert
        replies = await asyncio.gather(*(api.chat(f"round {round_}{directive}", session) for session in sessions))
        assert [r.body for r in replies if r.status != 200] == []
    histories = await asyncio.gather(*(api.messages(session, limit=50) for session in sessions))
    return histories, await api.conversations(limit=200)


def assert_stored_once(histories, listed, sessions: list[str], rounds: int, directive: str = "") -> None:
    for history in histories:
        assert history.status == 200, history.body
        users = [m["content"] for m in history.body["messages"] if m["role"] == "user"]
        assert users == [f"round {r}{directive}" for r in range(rounds)]
        assert len(history.body["messages"]) == 2 * rounds
    assert listed.status == 200, listed.body
    entries = listed.body["conversations"]
    ids = [entry["id"] for entry in entries]
    assert sorted(ids) == sorted(sessions)  # each conversation listed, and once
    assert {entry["message_count"] for entry in entries} == {2 * rounds}
    updated = [entry["updated_at"] for entry in entries]
    assert updated == sorted(updated, reverse=True)  # most recently active first


async def test_bursts_after_idle_gaps_lose_no_turn_and_no_list_update(standins, azurite):
    """The app lets go of an idle connection before the service would close it."""
    sessions = [f"burst-{uuid.uuid4().hex}" for _ in range(BURST)]
    with StaleProxy(azurite.port, SERVER_IDLE_SECONDS) as proxy:
        env = app_env(standins, proxy.connection_string(AZURITE_ACCOUNT, AZURITE_KEY))
        with served(env) as server:
            async with Api(server.url) as api:
                histories, listed = await turns_in_bursts(api, sessions, ROUNDS, IDLE_SECONDS)
    assert_stored_once(histories, listed, sessions, ROUNDS)
    assert proxy.dropped == 0


async def test_a_request_that_meets_a_closed_connection_is_sent_again(standins, azurite):
    """Connections closed sooner than the app lets go of them: every request that meets one (the
    turn's read after the gap; its transaction and list update after the model's slow answer) is
    sent again on a new connection, and each turn is still stored once and listed once."""
    sessions = [f"stale-{uuid.uuid4().hex}" for _ in range(16)]
    slow = " [[sleep:1]]"  # the pool goes stale while the model answers
    with StaleProxy(azurite.port, idle_seconds=0.5) as proxy:
        env = app_env(standins, proxy.connection_string(AZURITE_ACCOUNT, AZURITE_KEY))
        with served(env) as server:
            async with Api(server.url) as api:
                histories, listed = await turns_in_bursts(api, sessions, 2, 1.0, slow)
    assert proxy.dropped > 0
    assert_stored_once(histories, listed, sessions, 2, slow)


async def test_a_deleted_table_is_named_and_made_again(standins, azurite):
    """A table deleted under the running app (in Azure, deleted and provisioned again; locally,
    an Azurite restarted in memory): the request that meets it answers 503 naming it, health
    names it, and the next use creates it again."""
    env = app_env(standins, azurite.connection_string)
    messages, conversations = env["CHAT_TABLE_PREFIX"] + "messages", env["CHAT_TABLE_PREFIX"] + "conversations"
    with served(env) as server:
        async with Api(server.url) as api:
            assert (await api.chat("before", "kept")).status == 200
            async with TableServiceClient.from_connection_string(azurite.connection_string) as service:
                await service.delete_table(messages)
                await service.delete_table(conversations)
            lost = await api.chat("after the delete", "kept")
            health = await api.request("GET", "/api/health")
            healed = await api.request("GET", "/api/health")
            turn = await api.chat("again", "kept")
            listed = await api.conversations()

    assert lost.status == 503 and lost.error_code == "storage_unavailable"
    assert messages in lost.body["error"]["message"]
    # The turn's read made the app forget the messages table: health made it again, and found
    # the conversations table gone.
    assert health.status == 503, health.body
    assert health.body["checks"]["storage"] == "storage_unavailable"
    assert health.body["missing_tables"] == [conversations]
    assert healed.status == 200 and healed.body["missing_tables"] == [], healed.body
    assert turn.status == 200 and turn.body["message"]["content"] == "Echo #0: again"
    assert [entry["id"] for entry in listed.body["conversations"]] == ["kept"]


@contextmanager
def silent_storage() -> Iterator[int]:
    """A loopback port that accepts connections and never answers a byte."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


async def test_storage_that_never_answers_fails_the_request_and_health_with_503(standins):
    with silent_storage() as port:
        connection_string = (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"TableEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
        )
        env = app_env(standins, connection_string, CHAT_STORAGE_TIMEOUT_SECONDS="0.5")
        with served(env) as server:
            # A client that waits less than the SDK's read timeout (30 s) once, let alone with retries.
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as client:
                async with client.post(
                    server.url + "/api/chat", json={"messages": [{"role": "user", "content": "hi"}]}
                ) as r:
                    turn = (r.status, await r.json())
                async with client.get(server.url + "/api/health") as r:
                    health = (r.status, await r.json())

    assert turn == (503, {"error": {"code": "storage_unavailable", "message": turn[1]["error"]["message"]}})
    assert "did not answer" in turn[1]["error"]["message"]
    assert health[0] == 503 and health[1]["checks"]["storage"] == "storage_unavailable"
    assert health[1]["checks"]["model"] == "ok"
