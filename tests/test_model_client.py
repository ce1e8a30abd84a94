"""The model client's output limit, through the real openai SDK against the model stand-in:
`max_completion_tokens`, and `max_tokens` only for an endpoint that does not know the former."""

from __future__ import annotations

import pytest
from azure.identity.aio import ManagedIdentityCredential

from chat.dependencies import _openai_client
from chat.engine.errors import ModelUnavailable
from chat.engine.items import message
from chat.engine.model import Finished, ModelRequest
from chat.settings import Settings
from chat.upstream.model import ModelClient

pytestmark = pytest.mark.anyio

HELLO = (message("user", "one two three four"),)  # an answer of 6 tokens


def ask(limit: int | None = None) -> ModelRequest:
    return ModelRequest(system_prompt="You are the test assistant.", items=HELLO, max_output_tokens=limit)


@pytest.fixture
async def client_for(standins, monkeypatch):
    """A ModelClient as the app builds it, keyless, for an Azure OpenAI API version."""
    monkeypatch.setenv("IDENTITY_ENDPOINT", standins.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", standins.identity_header)
    made: list[tuple[ModelClient, ManagedIdentityCredential]] = []

    def build(api_version: str) -> ModelClient:
        settings = Settings.from_env(
            {
                "AZURE_OPENAI_ENDPOINT": standins.model_url,
                "AZURE_OPENAI_CHAT_DEPLOYMENT": standins.deployment,
                "AZURE_OPENAI_API_VERSION": api_version,
                "CHAT_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",  # not reached
                "CHAT_MODEL_MAX_RETRIES": "0",
            }
        )
        credential = ManagedIdentityCredential()
        client = ModelClient(_openai_client(settings, credential), settings.model_name)
        made.append((client, credential))
        return client

    yield build
    for client, credential in made:
        await client.close()
        await credential.close()


def sent_limits(requests: list[dict]) -> list[dict[str, int]]:
    return [
        {k: v for k, v in request["body"].items() if k in ("max_completion_tokens", "max_tokens")}
        for request in requests
    ]


async def test_the_limit_goes_as_max_completion_tokens_and_only_when_asked(client_for, standins):
    client = client_for("2024-10-21")
    before = len(standins.requests())
    capped = await client.complete(ask(2))
    uncapped = await client.complete(ask())
    assert (capped.text, capped.finish_reason, capped.usage.completion_tokens) == ("Echo #0:", "length", 2)
    assert uncapped.finish_reason == "stop"
    assert sent_limits(standins.requests()[before:]) == [{"max_completion_tokens": 2}, {}]


async def test_an_api_version_without_max_completion_tokens_gets_max_tokens_from_then_on(client_for, standins):
    client = client_for("2024-06-01")
    before = len(standins.requests())
    first = await client.complete(ask(3))
    events = [event async for event in await client.stream(ask(3))]
    assert first.text == "Echo #0: one" and first.finish_reason == "length"
    assert isinstance(events[-1], Finished) and events[-1].completion.finish_reason == "length"
    assert sent_limits(standins.requests()[before:]) == [
        {"max_completion_tokens": 3},  # refused: 400
        {"max_tokens": 3},
        {"max_tokens": 3},
    ]


async def test_a_limit_over_the_models_own_is_an_error_not_a_switch_to_max_tokens(client_for, standins):
    client = client_for("2024-10-21")
    before = len(standins.requests())
    with pytest.raises(ModelUnavailable) as caught:
        await client.complete(ask(20_000))
    assert caught.value.code == "model_rejected_request"
    await client.complete(ask(5))
    assert sent_limits(standins.requests()[before:]) == [
        {"max_completion_tokens": 20_000},
        {"max_completion_tokens": 5},
    ]
