"""Trust in `x-ms-client-principal` only behind App Service authentication.

App Service sets WEBSITE_AUTH_ENABLED=True when its authentication is on. A deployment that trusts
the header without it could be reached directly, with a forged header: the app refuses to serve
it at all, names both settings, and stores nothing.
"""

from __future__ import annotations

import uuid

import pytest
from azure.data.tables import TableServiceClient

from tests.support.api import Api, signed_in
from tests.support.servers import AppServer, app_env

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def test_a_trusting_app_without_app_service_authentication_refuses_and_stores_nothing(standins, azurite):
    prefix = "trust" + uuid.uuid4().hex[:10]
    env = app_env(standins, azurite.connection_string, CHAT_TRUST_CLIENT_PRINCIPAL="true", CHAT_TABLE_PREFIX=prefix)
    assert "WEBSITE_AUTH_ENABLED" not in env
    calls = len(standins.requests())
    server = AppServer(env).start()
    try:
        async with Api(server.url, headers=signed_in(f"forged-{uuid.uuid4().hex}")) as api:
            health = await api.request("GET", "/api/health")
            replies = [
                await api.chat("hello", "c1"),
                await api.chat("hello", "c1", stream=True),
                await api.conversations(),
                await api.messages("c1"),
                await api.delete("c1"),
            ]
    finally:
        server.stop()

    assert health.status == 503 and health.body["status"] == "misconfigured"
    for reply in (health, *replies):
        assert reply.status == 503, reply
        assert reply.error_code == "configuration_error"
        assert "WEBSITE_AUTH_ENABLED" in reply.body["error"]["message"]
        assert "CHAT_TRUST_CLIENT_PRINCIPAL" in reply.body["error"]["message"]
    assert len(standins.requests()) == calls, "a refused turn must not reach the model"
    with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        tables = [t.name for t in service.list_tables() if t.name.startswith(prefix)]
    assert tables == [], "nothing may be stored, not even an empty table"


async def test_a_trusting_app_behind_app_service_authentication_serves_its_users(standins, azurite):
    env = app_env(standins, azurite.connection_string, CHAT_TRUST_CLIENT_PRINCIPAL="true", WEBSITE_AUTH_ENABLED="True")
    server = AppServer(env).start()
    try:
        async with Api(server.url, headers=signed_in(f"user-{uuid.uuid4().hex}")) as api:
            health = await api.request("GET", "/api/health")
            turn = await api.chat("hello", "c1")
            stored = await api.messages("c1")
        async with Api(server.url) as anonymous:
            refused = await anonymous.conversations()
    finally:
        server.stop()
    assert health.status == 200 and health.body["status"] == "ok"
    assert turn.status == 200
    assert [m["role"] for m in stored.body["messages"]] == ["user", "assistant"]
    assert stored.body["messages"][0]["content"] == "hello"
    assert refused.status == 401 and refused.error_code == "unauthenticated"


async def test_signed_in_users_behind_app_service_authentication_without_trust_are_reported(standins, azurite):
    """Trust off behind App Service authentication: every signed-in user is the owner `app`, so
    they share one list. The app still serves them (a single service caller is a sound setup) but
    says so: once in the log, and in /api/health from the first such request on."""
    env = app_env(standins, azurite.connection_string, WEBSITE_AUTH_ENABLED="True")
    assert "CHAT_TRUST_CLIENT_PRINCIPAL" not in env
    server = AppServer(env).start()
    try:
        async with Api(server.url) as api:
            before = await api.request("GET", "/api/health")
            keyed = await api.chat("no principal", "shared-1")
            still_quiet = await api.request("GET", "/api/health")
        async with Api(server.url, headers=signed_in(f"ada-{uuid.uuid4().hex}")) as ada:
            turn = await ada.chat("hello from ada", "shared-1")
        async with Api(server.url, headers=signed_in(f"bob-{uuid.uuid4().hex}")) as bob:
            seen_by_bob = await bob.messages("shared-1")
            after = await bob.request("GET", "/api/health")
    finally:
        server.stop()

    assert before.status == still_quiet.status == 200 and before.body["warnings"] == still_quiet.body["warnings"] == []
    assert keyed.status == turn.status == 200
    # What the warning is about: Bob reads what Ada wrote.
    assert "hello from ada" in [m["content"] for m in seen_by_bob.body["messages"]]
    assert after.status == 200 and after.body["status"] == "ok"
    [warning] = after.body["warnings"]
    assert warning["code"] == "client_principal_ignored"
    assert "CHAT_TRUST_CLIENT_PRINCIPAL" in warning["message"] and "WEBSITE_AUTH_ENABLED" in warning["message"]
