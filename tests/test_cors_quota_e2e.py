"""CORS for front ends on another origin, and the per-owner daily token quota, end to end.

The quota tests run two instances on one storage account, and read the owner's count straight
from Azurite after the turns, to compare it with the usage the clients were told.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from azure.data.tables.aio import TableClient

from chat import keys
from tests.api import Api, Reply, signed_in
from tests.conftest import AppServer, app_env

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def cors_server(standins, azurite):
    server = AppServer(
        app_env(standins, azurite.connection_string, CHAT_ALLOWED_ORIGINS=f"{ORIGIN}, http://localhost:4280")
    ).start()
    yield server
    server.stop()


def preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": "content-type"}


async def test_preflight_from_an_allowed_origin(cors_server):
    async with Api(cors_server.url) as api:
        reply = await api.request("OPTIONS", "/api/chat/stream", headers=preflight(ORIGIN))
    assert reply.status == 204
    assert reply.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert reply.headers["Access-Control-Allow-Methods"] == "POST"
    assert "Idempotency-Key" in reply.headers["Access-Control-Allow-Headers"]
    assert reply.headers["Vary"] == "Origin"


async def test_preflight_from_another_origin_is_refused(cors_server, api):
    async with Api(cors_server.url) as cors_api:
        reply = await cors_api.request("OPTIONS", "/api/chat", headers=preflight("https://evil.example.net"))
    assert reply.status == 403 and reply.error_code == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in reply.headers
    # With no CHAT_ALLOWED_ORIGINS, no origin is allowed.
    reply = await api.request("OPTIONS", "/api/chat", headers=preflight(ORIGIN))
    assert reply.status == 403


async def test_answers_carry_cors_headers_for_allowed_origins_only(cors_server):
    async with Api(cors_server.url) as api:
        allowed = await api.chat("hi from the web", headers={"Origin": ORIGIN})
        streamed = await api.chat("hi again", allowed.body["sessionState"], stream=True, headers={"Origin": ORIGIN})
        other = await api.chat("hi from elsewhere", headers={"Origin": "https://evil.example.net"})
        error = await api.request("GET", "/api/chat", headers={"Origin": ORIGIN})
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Retry-After" in allowed.headers["Access-Control-Expose-Headers"]
    assert streamed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert error.status == 405 and error.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert other.status == 200 and "Access-Control-Allow-Origin" not in other.headers


async def test_plain_options_lists_the_methods(cors_server):
    async with Api(cors_server.url) as api:
        reply = await api.request("OPTIONS", "/api/conversations/abc")
    assert reply.status == 204 and reply.headers["Allow"] == "DELETE, OPTIONS"


# -- quota --------------------------------------------------------------------------------------

QUOTA = 200


@pytest.fixture(scope="module")
def quota_servers(standins, azurite):
    """Two instances sharing one storage account: the quota must hold across them."""
    env = app_env(
        standins,
        azurite.connection_string,
        CHAT_DAILY_TOKEN_QUOTA=str(QUOTA),
        CHAT_TRUST_CLIENT_PRINCIPAL="true",
        CHAT_TABLE_PREFIX="quota" + uuid.uuid4().hex[:8],
    )
    servers = [AppServer(env).start(), AppServer(env).start()]
    yield servers
    for server in servers:
        server.stop()


async def test_the_daily_quota_holds_across_instances_and_owners(quota_servers, standins):
    first, second = quota_servers
    user = signed_in(f"heavy-{uuid.uuid4().hex}")
    big = "word " * 200  # about 250 prompt tokens on the stand-in: over the quota after one turn
    async with Api(first.url, headers=user) as a, Api(second.url, headers=user) as b:
        used = await a.chat(big, "q1", headers={"Idempotency-Key": "big-one"})
        assert used.status == 200
        calls = len(standins.requests())
        refused = await b.chat("one more", "q1")
        refused_stream = await a.chat("one more", "q1", stream=True)
        replay = await b.chat(big, "q1", headers={"Idempotency-Key": "big-one"})
        stored = await a.messages("q1")
    for reply in (refused, refused_stream):
        assert reply.status == 429 and reply.error_code == "quota_exceeded"
        assert 0 < int(reply.headers["Retry-After"]) <= 86_400
    assert len(standins.requests()) == calls, "a refused turn must not reach the model"
    assert replay.status == 200 and replay.headers.get("Idempotent-Replayed") == "true"
    assert len(stored.body["messages"]) == 2
    async with Api(second.url, headers=signed_in(f"light-{uuid.uuid4().hex}")) as other:
        assert (await other.chat("my own quota", "q1")).status == 200


def user_of(label: str) -> tuple[str, dict[str, str]]:
    """A new signed-in user: the owner the app makes of them, and their request headers."""
    user_id = f"{label}-{uuid.uuid4().hex}"
    return f"user:aad:{user_id}", signed_in(user_id)


async def stored_count(azurite, prefix: str, owner: str) -> int:
    """The owner's token count as stored: every count row of their partition, whatever the day."""
    partition = keys.owner_partition(owner)
    table = TableClient.from_connection_string(azurite.connection_string, table_name=f"{prefix}conversations")
    async with table:
        rows = table.query_entities(
            "PartitionKey eq @p and RowKey ge @lo and RowKey lt @hi",
            parameters={"p": partition, "lo": keys.USAGE_PREFIX, "hi": chr(ord(keys.USAGE_PREFIX) + 1)},
        )
        return sum([int(row["tokens"]) async for row in rows])


def usage_told(reply: Reply) -> int:
    """The tokens a successful turn told its client it used."""
    context = reply.lines[-1]["context"] if reply.lines else reply.body["context"]
    return context["usage"]["prompt_tokens"] + context["usage"]["completion_tokens"]


ROOMY_PREFIX = "roomy" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def roomy_servers(standins, azurite):
    """Two instances with a quota no test here reaches: every turn is admitted and counted."""
    env = app_env(
        standins,
        azurite.connection_string,
        CHAT_DAILY_TOKEN_QUOTA="1000000",
        CHAT_TRUST_CLIENT_PRINCIPAL="true",
        CHAT_TABLE_PREFIX=ROOMY_PREFIX,
    )
    servers = [AppServer(env).start(), AppServer(env).start()]
    yield servers
    for server in servers:
        server.stop()


async def test_fifty_concurrent_turns_of_one_owner_are_all_counted(roomy_servers, azurite):
    owner, user = user_of("busy")
    first, second = roomy_servers
    async with Api(first.url, headers=user) as a, Api(second.url, headers=user) as b:
        replies = await asyncio.gather(
            *((a, b)[n % 2].chat(f"turn {n} of the burst", f"burst-{n % 5}", stream=n % 3 == 0) for n in range(50))
        )
    assert [reply.status for reply in replies] == [200] * 50
    told = sum(usage_told(reply) for reply in replies)
    assert await stored_count(azurite, ROOMY_PREFIX, owner) == told
