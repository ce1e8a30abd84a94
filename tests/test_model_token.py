"""A model token refused before it expires (revoked, or issued for a role since removed): the app
drops it and tries once more with a fresh one from the managed identity endpoint, through the
real openai SDK and azure-identity against the stand-ins."""

from __future__ import annotations

import pytest
from azure.identity.aio import ManagedIdentityCredential

from chat.dependencies import model_client
from chat.engine.errors import ModelUnavailable
from chat.engine.items import message
from chat.engine.model import ModelRequest
from chat.settings import Settings
from chat.upstream.model import ModelClient

pytestmark = pytest.mark.anyio

HELLO = ModelRequest(system_prompt="You are the test assistant.", items=(message("user", "hello"),))


@pytest.fixture
async def model(standins, monkeypatch):
    monkeypatch.setenv("IDENTITY_ENDPOINT", standins.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", standins.identity_header)
    settings = Settings.from_env(
        {
            "AZURE_OPENAI_ENDPOINT": standins.model_url,
            "AZURE_OPENAI_CHAT_DEPLOYMENT": standins.deployment,
            "CHAT_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",  # not reached
            "CHAT_MODEL_MAX_RETRIES": "0",
        }
    )
    credential = ManagedIdentityCredential()
    client = model_client(settings, credential)
    yield client
    await client.close()
    await credential.close()
    standins.identity.refusing = False


def issued(standins) -> list[str]:
    return [entry["token"] for entry in standins.token_requests() if entry["token"]]


def sent_tokens(standins, since: int) -> list[tuple[str, int]]:
    """The bearer token and the answer's status of each chat request after the first `since`."""
    return [
        (entry["headers"]["authorization"].partition(" ")[2], entry["status"]) for entry in standins.requests()[since:]
    ]


async def test_a_refused_token_is_replaced_by_a_fresh_one(model: ModelClient, standins):
    await model.complete(HELLO)
    [*_, first] = issued(standins)
    standins.identity.revoke(first)
    before = len(standins.requests())

    answer = await model.complete(HELLO)

    [*_, fresh] = issued(standins)
    assert fresh != first
    assert sent_tokens(standins, before) == [(first, 401), (fresh, 200)]
    assert answer.outputs[0].text == "Echo #0: hello"
    # The fresh token is the one kept: the next call sends it, and fetches none.
    tokens = len(issued(standins))
    await model.complete(HELLO)
    assert sent_tokens(standins, before + 2) == [(fresh, 200)] and len(issued(standins)) == tokens


async def test_a_fresh_token_refused_too_is_the_error_it_always_was(model: ModelClient, standins):
    await model.complete(HELLO)
    [*_, first] = issued(standins)
    standins.identity.revoke(first)
    standins.identity.refusing = True  # the identity's tokens are all refused now
    before = len(standins.requests())

    with pytest.raises(ModelUnavailable) as refused:
        await model.complete(HELLO)

    assert refused.value.code == "model_auth_failed"
    assert [status for _, status in sent_tokens(standins, before)] == [401, 401]  # one retry, no more
    [*_, fresh] = issued(standins)
    assert [token for token, _ in sent_tokens(standins, before)] == [first, fresh]
