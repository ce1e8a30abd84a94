"""Table Storage reached keylessly, as in Azure: CHAT_STORAGE_ENDPOINT and a managed identity token.

Azurite serves HTTPS with Entra ID (OAuth) checking on, and the app holds no key: its credential
gets a token for https://storage.azure.com from the managed identity stand-in, and every storage
call carries it.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request

import pytest

from tests.support.api import Api
from tests.support.azurite import Azurite
from tests.support.servers import AppServer, app_env
from tests.support.tls import self_signed_certificate

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture(scope="module")
def keyless(standins, tmp_path_factory):
    cert, key = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    azurite = Azurite(tls=(cert, key)).start()
    env = app_env(
        standins,
        None,
        CHAT_STORAGE_ENDPOINT=azurite.endpoint,
        SSL_CERT_FILE=str(cert),
    )
    server = AppServer(env).start()
    yield azurite, server, cert
    server.stop()
    azurite.stop()


async def test_turns_are_stored_and_read_with_a_token_not_a_key(keyless, standins):
    _, server, _ = keyless
    before = len(standins.token_requests())
    async with Api(server.url) as api:
        first = await api.chat("stored keylessly")
        second = await api.chat("and read back", first.body["sessionState"], stream=True)
        stored = await api.messages(first.body["sessionState"])
        health = await api.request("GET", "/api/health")
    assert first.status == 200 and second.text == "Echo #2: and read back"
    assert [m["content"] for m in stored.body["messages"]][::2] == ["stored keylessly", "and read back"]
    assert health.status == 200 and health.body["checks"]["storage"] == "ok"
    storage_grants = [t for t in standins.token_requests()[before:] if t["resource"] == "https://storage.azure.com"]
    assert storage_grants and all(t["status"] == 200 for t in storage_grants)


def test_the_emulator_refuses_a_caller_without_a_token(keyless):
    azurite, _, cert = keyless
    context = ssl.create_default_context(cafile=str(cert))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{azurite.endpoint}/Tables", context=context, timeout=10)
    assert refused.value.code in (401, 403)
