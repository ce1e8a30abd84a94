"""The model stand-in answers chat completions as Azure OpenAI does, keyless, and as the
OpenAI-compatible route does, with a key: driven here by the real openai and azure-identity clients,
its answers, streams, refused credentials and bad requests."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import openai
import pytest
from azure.identity.aio import ManagedIdentityCredential, get_bearer_token_provider

from standins import AZURE_RESOURCE, StandIns
from tests.support.standin_clients import (
    API_VERSION,
    HELLO,
    azure_openai,
    collect,
    content_of,
    status_of,
)

# Azure OpenAI, keyless


def test_azure_json_answer(standins: StandIns) -> None:
    async def scenario() -> Any:
        async with azure_openai(standins) as client:
            return await client.chat.completions.create(model=standins.deployment, messages=HELLO)

    completion = asyncio.run(scenario())

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "Echo #0: Hello"
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (2, 3)
    assert completion.model_extra["prompt_filter_results"][0]["prompt_index"] == 0
    [request] = standins.requests()
    assert request["path"] == f"/openai/deployments/{standins.deployment}/chat/completions"
    assert request["query"] == {"api-version": API_VERSION}
    assert request["auth"] == "managed-identity"
    assert request["grant"]["resource"] == AZURE_RESOURCE
    assert request["body"]["messages"] == HELLO
    assert request["status"] == 200
    assert len(standins.token_requests()) == 1


def test_the_answer_counts_the_history_it_was_sent(standins: StandIns) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Echo #0: Hello"},
        {"role": "user", "content": "And again"},
    ]

    async def scenario() -> Any:
        async with azure_openai(standins) as client:
            return await client.chat.completions.create(model=standins.deployment, messages=messages)

    completion = asyncio.run(scenario())

    assert completion.choices[0].message.content == "Echo #2: And again"
    assert completion.usage.prompt_tokens == sum(len(m["content"]) // 4 + 1 for m in messages)
    assert standins.requests()[0]["body"]["messages"] == messages


def test_azure_stream_has_the_azure_prelude_the_content_and_the_usage(standins: StandIns) -> None:
    question = "Tell me a story about a dog"

    async def scenario() -> list[Any]:
        async with azure_openai(standins) as client:
            stream = await client.chat.completions.create(
                model=standins.deployment,
                messages=[{"role": "user", "content": question}],
                stream=True,
                stream_options={"include_usage": True},
            )
            return await collect(stream)

    chunks = asyncio.run(scenario())

    first, role, *middle, finish, usage = chunks
    assert first.choices == [] and first.model_extra["prompt_filter_results"]
    assert role.choices[0].delta.role == "assistant" and role.choices[0].delta.content == ""
    assert len(middle) > 2
    assert content_of(chunks) == f"Echo #0: {question}"
    assert finish.choices[0].finish_reason == "stop"
    assert usage.choices == [] and usage.usage.completion_tokens == 9
    assert standins.requests()[0]["body"]["stream_options"] == {"include_usage": True}


def test_stream_without_include_usage_has_no_usage_chunk(standins: StandIns) -> None:
    async def scenario() -> list[Any]:
        async with azure_openai(standins) as client:
            stream = await client.chat.completions.create(model=standins.deployment, messages=HELLO, stream=True)
            return await collect(stream)

    chunks = asyncio.run(scenario())

    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.usage is None for chunk in chunks)


def test_api_key_is_refused_on_the_azure_route(standins: StandIns) -> None:
    async def scenario() -> None:
        async with openai.AsyncAzureOpenAI(
            azure_endpoint=standins.model_url, api_version=API_VERSION, api_key="a-key", max_retries=0
        ) as client:
            await client.chat.completions.create(model=standins.deployment, messages=HELLO)

    # Azure answers 403 AuthenticationTypeDisabled when local auth is disabled.
    with pytest.raises(openai.PermissionDeniedError) as caught:
        asyncio.run(scenario())
    assert caught.value.status_code == 403
    assert caught.value.code == "AuthenticationTypeDisabled"
    assert standins.requests()[0]["auth"] == "api-key"


def test_unknown_token_is_refused(standins: StandIns) -> None:
    async def scenario() -> None:
        async with openai.AsyncAzureOpenAI(
            azure_endpoint=standins.model_url, api_version=API_VERSION, azure_ad_token="forged", max_retries=0
        ) as client:
            await client.chat.completions.create(model=standins.deployment, messages=HELLO)

    with pytest.raises(openai.AuthenticationError) as caught:
        asyncio.run(scenario())
    assert caught.value.status_code == 401
    assert "audience is incorrect" in caught.value.body["message"]
    assert standins.requests()[0]["auth"] == "unknown-bearer"


def test_token_for_another_resource_is_refused(standins: StandIns) -> None:
    async def scenario() -> None:
        async with ManagedIdentityCredential() as credential:
            provider = get_bearer_token_provider(credential, "https://storage.azure.com/.default")
            async with openai.AsyncAzureOpenAI(
                azure_endpoint=standins.model_url,
                api_version=API_VERSION,
                azure_ad_token_provider=provider,
                max_retries=0,
            ) as client:
                await client.chat.completions.create(model=standins.deployment, messages=HELLO)

    with pytest.raises(openai.AuthenticationError):
        asyncio.run(scenario())
    assert standins.requests()[0]["grant"]["resource"] == "https://storage.azure.com"


def test_unknown_deployment_is_not_found(standins: StandIns) -> None:
    async def scenario() -> None:
        async with azure_openai(standins, max_retries=0) as client:
            await client.chat.completions.create(model="no-such-deployment", messages=HELLO)

    with pytest.raises(openai.NotFoundError) as caught:
        asyncio.run(scenario())
    assert caught.value.code == "DeploymentNotFound"


def test_missing_api_version_is_not_found(standins: StandIns) -> None:
    request = urllib.request.Request(
        f"{standins.model_url}/openai/deployments/{standins.deployment}/chat/completions",
        data=json.dumps({"messages": HELLO}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert status_of(request) == 404
    assert standins.requests()[0]["status"] == 404


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([], "messages"),
        ([{"role": "robot", "content": "hi"}], "messages[0].role"),
        ([{"role": "user"}], "messages[0].content"),
    ],
)
def test_invalid_messages_are_a_bad_request(standins: StandIns, messages: list[Any], param: str) -> None:
    async def scenario() -> None:
        async with azure_openai(standins, max_retries=0) as client:
            await client.chat.completions.create(model=standins.deployment, messages=messages)

    with pytest.raises(openai.BadRequestError) as caught:
        asyncio.run(scenario())
    assert caught.value.param == param


# OpenAI-compatible route


def test_openai_compatible_route_answers_json_and_streams(standins: StandIns) -> None:
    async def scenario() -> tuple[Any, list[Any]]:
        async with openai.AsyncOpenAI(base_url=standins.model_url + "/v1", api_key=standins.openai_api_key) as client:
            completion = await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=HELLO, stream=True, stream_options={"include_usage": True}
            )
            return completion, await collect(stream)

    completion, chunks = asyncio.run(scenario())

    assert completion.choices[0].message.content == "Echo #0: Hello"
    assert completion.model == "gpt-4o-mini"
    assert "prompt_filter_results" not in completion.model_extra
    assert chunks[0].choices[0].delta.role == "assistant"
    assert content_of(chunks) == "Echo #0: Hello"
    assert chunks[-1].usage.total_tokens == 5
    assert [r["auth"] for r in standins.requests()] == ["openai-api-key", "openai-api-key"]


def test_openai_compatible_route_refuses_a_wrong_key(standins: StandIns) -> None:
    async def scenario() -> None:
        async with openai.AsyncOpenAI(base_url=standins.model_url + "/v1", api_key="sk-wrong", max_retries=0) as client:
            await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)

    with pytest.raises(openai.AuthenticationError) as caught:
        asyncio.run(scenario())
    assert caught.value.code == "invalid_api_key"
