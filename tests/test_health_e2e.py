"""/api/health names what is wrong with the model endpoint and storage, never their values."""

from __future__ import annotations

import pytest

from tests.support.api import Api
from tests.support.ports import free_port
from tests.support.servers import AppServer, app_env

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.mark.parametrize(
    ("overrides", "model_check"),
    [
        ({"AZURE_OPENAI_ENDPOINT": f"http://127.0.0.1:{free_port()}"}, "model_unreachable"),
        ({"IDENTITY_HEADER": "not-the-secret"}, "model_credential_unavailable"),
    ],
    ids=["unreachable", "no-token"],
)
async def test_health_reports_a_broken_model_endpoint(standins, azurite, overrides, model_check):
    server = AppServer(app_env(standins, azurite.connection_string, **overrides)).start()
    try:
        async with Api(server.url) as api:
            reply = await api.request("GET", "/api/health")
            turn = await api.chat("hello")
    finally:
        server.stop()
    assert reply.status == 503
    assert reply.body["status"] == "degraded"
    assert reply.body["checks"] == {"storage": "ok", "model": model_check}
    assert "127.0.0.1" not in str(reply.body) and "not-the-secret" not in str(reply.body)
    assert turn.error_code == model_check and turn.status in (502, 503)


async def test_health_names_a_missing_setting(standins, azurite):
    server = AppServer(app_env(standins, azurite.connection_string, AZURE_OPENAI_CHAT_DEPLOYMENT="")).start()
    try:
        async with Api(server.url) as api:
            reply = await api.request("GET", "/api/health")
    finally:
        server.stop()
    assert reply.status == 503 and reply.body["status"] == "misconfigured"
    assert "AZURE_OPENAI_CHAT_DEPLOYMENT" in reply.body["error"]["message"]
