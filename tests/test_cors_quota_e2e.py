"""CORS for front ends on another origin, and the per-owner daily token quota, end to end."""

from __future__ import annotations

import uuid

import pytest

from tests.api import Api, signed_in
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
        WEBSITE_AUTH_ENABLED="True",
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
