"""The stand-ins speak the real protocols: driven here by the real azure-identity and openai clients."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential as SyncManagedIdentityCredential
from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential, get_bearer_token_provider

from standins import AZURE_RESOURCE, AZURE_SCOPE, StandIns
from standins.completion import REFUSAL, long_text
from standins.tools import example_arguments, requested_calls

API_VERSION = "2024-10-21"
HELLO = [{"role": "user", "content": "Hello"}]

_CREDENTIAL_VARIABLES = (
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_TOKEN_CREDENTIALS",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_AD_TOKEN",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
)
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(scope="module")
def standins() -> Iterator[StandIns]:
    """A pair of this module's own, so clearing its journals never touches the session's."""
    with StandIns() as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_journals(standins: StandIns) -> None:
    standins.clear()


@pytest.fixture(autouse=True)
def blocked_connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Refuse every outbound connection except to loopback; return the refused addresses."""
    refused: list[Any] = []
    connect = socket.socket.connect

    def loopback_only(sock: socket.socket, address: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not ipaddress.ip_address(address[0]).is_loopback:
            refused.append(address)
            raise ConnectionRefusedError(f"tests may only connect to loopback, not {address[0]}")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    return refused


@pytest.fixture(autouse=True)
def identity_env(monkeypatch: pytest.MonkeyPatch, standins: StandIns) -> None:
    """The environment Azure Functions gives a managed identity, and nothing else credential-like."""
    for name in _CREDENTIAL_VARIABLES + _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("IDENTITY_ENDPOINT", standins.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", standins.identity_header)


@contextlib.asynccontextmanager
async def azure_openai(
    standins: StandIns, api_version: str = API_VERSION, **options: Any
) -> AsyncIterator[openai.AsyncAzureOpenAI]:
    """The keyless client the product builds: managed identity token provider, no key."""
    async with ManagedIdentityCredential() as credential:
        provider = get_bearer_token_provider(credential, AZURE_SCOPE)
        async with openai.AsyncAzureOpenAI(
            azure_endpoint=standins.model_url, api_version=api_version, azure_ad_token_provider=provider, **options
        ) as client:
            yield client


async def azure_fault(standins: StandIns, content: str, **options: Any) -> openai.APIError:
    """The exception a single, unretried, non-streaming request raises."""
    async with azure_openai(standins, max_retries=0, **options) as client:
        with pytest.raises(openai.APIError) as caught:
            await client.chat.completions.create(
                model=standins.deployment, messages=[{"role": "user", "content": content}]
            )
    return caught.value


async def collect(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]


def content_of(chunks: list[Any]) -> str:
    return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)


def get_json(url: str | urllib.request.Request) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def status_of(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        with error:
            return error.code


# Managed identity


def test_managed_identity_credential_gets_a_token_for_the_resource(standins: StandIns) -> None:
    async def scenario() -> Any:
        async with ManagedIdentityCredential() as credential:
            return await credential.get_token(AZURE_SCOPE)

    token = asyncio.run(scenario())

    [request] = standins.token_requests()
    assert request["method"] == "GET"
    assert request["query"] == {"api-version": "2019-08-01", "resource": AZURE_RESOURCE}
    assert request["header_valid"] is True
    assert request["token"] == token.token
    assert 3000 < token.expires_on - time.time() <= 3600
    assert standins.identity.grant(token.token).resource == AZURE_RESOURCE


def test_default_credential_uses_the_user_assigned_identity_of_azure_client_id(
    standins: StandIns, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555")

    async def scenario() -> str:
        async with DefaultAzureCredential() as credential:
            return (await credential.get_token(AZURE_SCOPE)).token

    token = asyncio.run(scenario())

    [request] = standins.token_requests()
    assert request["query"]["client_id"] == "11111111-2222-3333-4444-555555555555"
    assert standins.identity.grant(token).client_id == "11111111-2222-3333-4444-555555555555"


def test_sync_credential_speaks_the_same_protocol_through_msal(standins: StandIns) -> None:
    token = SyncManagedIdentityCredential().get_token(AZURE_SCOPE)

    [request] = standins.token_requests()
    assert request["query"] == {"api-version": "2019-08-01", "resource": AZURE_RESOURCE}
    assert request["headers"]["metadata"] == "true"
    assert standins.identity.grant(token.token) is not None


def test_wrong_identity_header_is_refused(standins: StandIns, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDENTITY_HEADER", "not-the-secret")

    async def scenario() -> None:
        async with ManagedIdentityCredential() as credential:
            await credential.get_token(AZURE_SCOPE)

    with pytest.raises(ClientAuthenticationError, match="X-IDENTITY-HEADER"):
        asyncio.run(scenario())
    [request] = standins.token_requests()
    assert (request["status"], request["header_valid"], request["token"]) == (401, False, None)


def test_without_identity_endpoint_the_credential_would_leave_loopback(
    monkeypatch: pytest.MonkeyPatch, blocked_connections: list[Any]
) -> None:
    monkeypatch.delenv("IDENTITY_ENDPOINT")
    monkeypatch.delenv("IDENTITY_HEADER")

    async def scenario() -> None:
        async with ManagedIdentityCredential(retry_total=0) as credential:
            await credential.get_token(AZURE_SCOPE)

    # It falls back to the instance metadata service, which the loopback guard refuses.
    with pytest.raises(ClientAuthenticationError):
        asyncio.run(scenario())
    assert {address[0] for address in blocked_connections} == {"169.254.169.254"}


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


# Faults


def test_rate_limit_is_retried_after_retry_after_ms_then_raised(standins: StandIns) -> None:
    async def scenario() -> openai.APIError:
        async with azure_openai(standins, max_retries=2) as client:
            with pytest.raises(openai.RateLimitError) as caught:
                await client.chat.completions.create(
                    model=standins.deployment, messages=[{"role": "user", "content": "Hi [[429]]"}]
                )
        return caught.value

    error = asyncio.run(scenario())

    assert error.status_code == 429
    assert error.code == "429"
    assert error.response.headers["retry-after"] == "7"
    assert error.response.headers["retry-after-ms"] == "10"
    requests = standins.requests()
    assert [r["status"] for r in requests] == [429, 429, 429]
    assert [r["headers"]["x-stainless-retry-count"] for r in requests] == ["0", "1", "2"]


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors(standins: StandIns, status: int) -> None:
    error = asyncio.run(azure_fault(standins, f"Hi [[{status}]]"))

    assert isinstance(error, openai.InternalServerError)
    assert error.status_code == status


def test_fail_first_fails_then_succeeds_on_retry(standins: StandIns) -> None:
    content = "Hi [[fail-first:1]]"

    async def scenario() -> Any:
        async with azure_openai(standins, max_retries=1) as client:
            return await client.chat.completions.create(
                model=standins.deployment, messages=[{"role": "user", "content": content}]
            )

    completion = asyncio.run(scenario())

    assert completion.choices[0].message.content == f"Echo #0: {content}"
    assert [(r["status"], r["fault"]) for r in standins.requests()] == [(500, "fail-first"), (200, None)]


def test_fail_first_counts_per_exact_content(standins: StandIns) -> None:
    first = asyncio.run(azure_fault(standins, "A [[fail-first:1]]"))
    other = asyncio.run(azure_fault(standins, "B [[fail-first:1]]"))

    assert isinstance(first, openai.InternalServerError) and isinstance(other, openai.InternalServerError)


def test_sleep_makes_a_client_timeout(standins: StandIns) -> None:
    error = asyncio.run(azure_fault(standins, "Hi [[sleep:2]]", timeout=0.3))

    assert isinstance(error, openai.APITimeoutError)


def test_sleep_delays_a_stream_before_its_first_byte(standins: StandIns) -> None:
    async def scenario() -> None:
        async with azure_openai(standins, max_retries=0, timeout=0.3) as client:
            await client.chat.completions.create(
                model=standins.deployment, messages=[{"role": "user", "content": "Hi [[sleep:2]]"}], stream=True
            )

    with pytest.raises(openai.APITimeoutError):
        asyncio.run(scenario())


def test_cut_stream_drops_after_two_content_chunks(standins: StandIns) -> None:
    received: list[Any] = []

    async def scenario() -> None:
        async with azure_openai(standins, max_retries=0) as client:
            stream = await client.chat.completions.create(
                model=standins.deployment,
                messages=[{"role": "user", "content": "one two three four five six [[cut]]"}],
                stream=True,
            )
            async for chunk in stream:
                received.append(chunk)

    with pytest.raises(openai.APIConnectionError):
        asyncio.run(scenario())
    assert content_of(received) == "Echo #0: one two "
    assert all(chunk.choices[0].finish_reason is None for chunk in received if chunk.choices)
    assert standins.requests()[0]["fault"] == "cut"


def test_cut_json_answer_drops_the_connection(standins: StandIns) -> None:
    error = asyncio.run(azure_fault(standins, "Hi [[cut]]"))

    assert type(error) is openai.APIConnectionError
    assert standins.requests()[0]["status"] is None


def test_prompt_filter_is_azures_content_filter_error(standins: StandIns) -> None:
    error = asyncio.run(azure_fault(standins, "Hi [[filter]]"))

    assert isinstance(error, openai.BadRequestError)
    assert error.code == "content_filter"
    assert error.param == "prompt"
    assert error.body["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert error.body["innererror"]["content_filter_result"]["violence"]["filtered"] is True


@pytest.mark.parametrize("reason", ["content_filter", "length"])
def test_finish_reason_directive_cuts_the_answer_short(standins: StandIns, reason: str) -> None:
    messages = [{"role": "user", "content": f"Tell me more [[finish:{reason}]]"}]

    async def scenario() -> tuple[Any, list[Any]]:
        async with azure_openai(standins) as client:
            completion = await client.chat.completions.create(model=standins.deployment, messages=messages)
            stream = await client.chat.completions.create(model=standins.deployment, messages=messages, stream=True)
            return completion, await collect(stream)

    completion, chunks = asyncio.run(scenario())

    assert completion.choices[0].message.content == "Echo"
    assert completion.choices[0].finish_reason == reason
    assert content_of(chunks) == "Echo"
    assert chunks[-1].choices[0].finish_reason == reason


@pytest.mark.parametrize("limit", ["max_completion_tokens", "max_tokens"])
def test_an_output_limit_stops_the_answer_at_that_many_tokens(standins: StandIns, limit: str) -> None:
    messages = [{"role": "user", "content": "one two three four five six"}]  # an answer of 8 tokens

    async def scenario() -> tuple[Any, list[Any], Any]:
        async with azure_openai(standins) as client:
            completion = await client.chat.completions.create(
                model=standins.deployment, messages=messages, **{limit: 3}
            )
            stream = await client.chat.completions.create(
                model=standins.deployment,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                **{limit: 3},
            )
            roomy = await client.chat.completions.create(model=standins.deployment, messages=messages, **{limit: 8})
            return completion, await collect(stream), roomy

    completion, chunks, roomy = asyncio.run(scenario())

    assert completion.choices[0].message.content == "Echo #0: one"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 3
    assert content_of(chunks) == "Echo #0: one"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert chunks[-1].usage.completion_tokens == 3
    assert roomy.choices[0].message.content == "Echo #0: one two three four five six"
    assert roomy.choices[0].finish_reason == "stop" and roomy.usage.completion_tokens == 8


def test_a_long_answer_is_cut_at_the_limit_too(standins: StandIns) -> None:
    messages = [{"role": "user", "content": "Write a lot [[long:4321]]"}]

    async def scenario() -> Any:
        async with azure_openai(standins) as client:
            return await client.chat.completions.create(
                model=standins.deployment, messages=messages, max_completion_tokens=10
            )

    completion = asyncio.run(scenario())

    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 10 == len(completion.choices[0].message.content.split())
    assert long_text(4321).startswith(completion.choices[0].message.content)


@pytest.mark.parametrize(
    ("value", "code"), [(0, "integer_below_min_value"), ("3", "invalid_type"), (16_385, "invalid_value")]
)
def test_a_bad_output_limit_is_a_bad_request(standins: StandIns, value: Any, code: str) -> None:
    async def scenario() -> None:
        async with azure_openai(standins, max_retries=0) as client:
            await client.chat.completions.create(
                model=standins.deployment, messages=HELLO, extra_body={"max_completion_tokens": value}
            )

    with pytest.raises(openai.BadRequestError) as caught:
        asyncio.run(scenario())
    assert caught.value.code == code and caught.value.param == "max_completion_tokens"


def test_api_versions_before_max_completion_tokens_refuse_it_as_azure_does(standins: StandIns) -> None:
    async def scenario() -> tuple[openai.BadRequestError, Any]:
        async with azure_openai(standins, api_version="2024-06-01", max_retries=0) as client:
            with pytest.raises(openai.BadRequestError) as caught:
                await client.chat.completions.create(model=standins.deployment, messages=HELLO, max_completion_tokens=1)
            legacy = await client.chat.completions.create(model=standins.deployment, messages=HELLO, max_tokens=1)
            return caught.value, legacy

    refused, legacy = asyncio.run(scenario())

    assert refused.body["message"] == "Unrecognized request argument supplied: max_completion_tokens"
    assert legacy.choices[0].message.content == "Echo" and legacy.choices[0].finish_reason == "length"


def test_context_limit_counts_messages(standins: StandIns) -> None:
    directive = "Go on [[context-limit:3]]"
    short = [{"role": "user", "content": directive}]
    long = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": "d"},
        {"role": "user", "content": directive},
    ]

    async def scenario() -> tuple[Any, openai.APIError]:
        async with azure_openai(standins, max_retries=0) as client:
            fine = await client.chat.completions.create(model=standins.deployment, messages=short)
            with pytest.raises(openai.BadRequestError) as caught:
                await client.chat.completions.create(model=standins.deployment, messages=long)
            return fine, caught.value

    fine, error = asyncio.run(scenario())

    assert fine.choices[0].message.content == f"Echo #0: {directive}"
    assert error.code == "context_length_exceeded"
    assert error.param == "messages"
    assert "maximum context length" in error.message


def test_long_answer_has_exactly_n_characters_json_and_streamed(standins: StandIns) -> None:
    messages = [{"role": "user", "content": "Write a lot [[long:4321]]"}]

    async def scenario() -> tuple[Any, list[Any]]:
        async with azure_openai(standins) as client:
            completion = await client.chat.completions.create(model=standins.deployment, messages=messages)
            stream = await client.chat.completions.create(model=standins.deployment, messages=messages, stream=True)
            return completion, await collect(stream)

    completion, chunks = asyncio.run(scenario())

    answer = completion.choices[0].message.content
    assert len(answer) == 4321
    assert {"é", "中", "😀"} <= set(answer)
    assert content_of(chunks) == answer
    assert sum(1 for chunk in chunks if chunk.choices and chunk.choices[0].delta.content) == 5


def test_refuse_answers_a_refusal_json_and_streamed(standins: StandIns) -> None:
    messages = [{"role": "user", "content": "Do something bad [[refuse]]"}]

    async def scenario() -> tuple[Any, list[Any]]:
        async with azure_openai(standins) as client:
            completion = await client.chat.completions.create(model=standins.deployment, messages=messages)
            stream = await client.chat.completions.create(
                model=standins.deployment, messages=messages, stream=True, stream_options={"include_usage": True}
            )
            return completion, await collect(stream)

    completion, chunks = asyncio.run(scenario())

    message = completion.choices[0].message
    assert (message.content, message.refusal) == (None, REFUSAL)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == len(REFUSAL.split())
    deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
    assert (deltas[0].role, deltas[0].content, deltas[0].refusal) == ("assistant", None, "")
    assert len([d for d in deltas if d.refusal]) > 1
    assert "".join(d.refusal or "" for d in deltas) == REFUSAL
    assert content_of(chunks) == ""
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_an_assistant_refusal_sent_back_needs_no_content_and_counts(standins: StandIns) -> None:
    history = [
        {"role": "user", "content": "Do something bad"},
        {"role": "assistant", "refusal": REFUSAL},
        {"role": "user", "content": "Then something good"},
    ]
    user = {"role": "user", "content": "x"}
    bad = [user, {"role": "assistant", "refusal": 7}, user]
    no_text = [user, {"role": "assistant", "content": None}, user]

    async def scenario() -> tuple[Any, list[openai.BadRequestError]]:
        async with azure_openai(standins, max_retries=0) as client:
            completion = await client.chat.completions.create(model=standins.deployment, messages=history)
            errors = []
            for messages in (bad, no_text):
                try:
                    await client.chat.completions.create(model=standins.deployment, messages=messages)
                except openai.BadRequestError as e:
                    errors.append(e)
            return completion, errors

    completion, errors = asyncio.run(scenario())

    assert completion.choices[0].message.content == "Echo #2: Then something good"
    texts = ["Do something bad", REFUSAL, "Then something good"]
    assert completion.usage.prompt_tokens == sum(len(text) // 4 + 1 for text in texts)
    assert [(e.param, e.code) for e in errors] == [
        ("messages[1].refusal", "invalid_type"),
        ("messages[1].content", "invalid_type"),
    ]


def test_chunk_delay_still_streams_the_whole_answer(standins: StandIns) -> None:
    async def scenario() -> list[Any]:
        async with azure_openai(standins) as client:
            stream = await client.chat.completions.create(
                model=standins.deployment, messages=[{"role": "user", "content": "Slow [[chunk-delay:5]]"}], stream=True
            )
            return await collect(stream)

    assert content_of(asyncio.run(scenario())) == "Echo #0: Slow [[chunk-delay:5]]"


# Tool calls

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["city", "unit"],
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {"name": "get_time", "description": "The time in a zone.", "parameters": {"type": "object"}},
}
PARIS = '{"city": "Paris", "unit": "celsius"}'
ASK_WEATHER = f"Weather in Paris? [[tool:get_weather {PARIS}]]"
ASK_BOTH = f'Weather and time? [[tool:get_weather {PARIS}]] [[tool:get_time {{"zone": "Europe/Paris"}}]]'


def openai_client(standins: StandIns, **options: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=standins.model_url + "/v1", api_key=standins.openai_api_key, **options)


def tool_calls_of(chunks: list[Any]) -> list[dict[str, Any]]:
    """The calls of a stream, reassembled from their deltas the way a client must."""
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(delta.index, {"id": None, "type": None, "name": None, "arguments": ""})
            call["id"] = delta.id or call["id"]
            call["type"] = delta.type or call["type"]
            if delta.function is not None:
                call["name"] = delta.function.name or call["name"]
                call["arguments"] += delta.function.arguments or ""
    return [calls[index] for index in sorted(calls)]


def call_deltas(chunks: list[Any], index: int) -> list[Any]:
    return [
        delta
        for chunk in chunks
        if chunk.choices
        for delta in chunk.choices[0].delta.tool_calls or []
        if delta.index == index
    ]


def assistant_turn(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The assistant message a client sends back after the model called ``calls``."""
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls
        ],
    }


def tool_turn(call_id: str, output: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": output}


def test_a_directive_makes_the_model_call_a_tool_json(standins: StandIns) -> None:
    async def scenario() -> Any:
        async with azure_openai(standins) as client:
            return await client.chat.completions.create(
                model=standins.deployment, messages=[{"role": "user", "content": ASK_WEATHER}], tools=[WEATHER]
            )

    completion = asyncio.run(scenario())

    [choice] = completion.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.role == "assistant" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.id.startswith("call_") and len(call.id) <= 40
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert call.function.arguments == PARIS
    assert completion.usage.completion_tokens == (len("get_weather") + len(PARIS)) // 4 + 1
    [request] = standins.requests()
    assert request["body"]["tools"] == [WEATHER]
    assert request["tool_calls"] == [{"id": call.id, "name": "get_weather", "arguments": PARIS}]


def test_a_tool_call_streams_its_arguments_across_chunks(standins: StandIns) -> None:
    async def scenario() -> list[Any]:
        async with azure_openai(standins) as client:
            stream = await client.chat.completions.create(
                model=standins.deployment,
                messages=[{"role": "user", "content": ASK_WEATHER}],
                tools=[WEATHER],
                stream=True,
                stream_options={"include_usage": True},
            )
            return await collect(stream)

    chunks = asyncio.run(scenario())

    prelude, first, *_, finish, usage = chunks
    assert prelude.choices == [] and prelude.model_extra["prompt_filter_results"]
    assert first.choices[0].delta.role == "assistant" and first.choices[0].delta.content is None
    head, *rest = call_deltas(chunks, 0)
    assert (head.id, head.type, head.function.name, head.function.arguments) == (
        standins.requests()[0]["tool_calls"][0]["id"],
        "function",
        "get_weather",
        "",
    )
    assert head is first.choices[0].delta.tool_calls[0]
    assert len(rest) > 2 and all(d.id is None and d.type is None and d.function.name is None for d in rest)
    [call] = tool_calls_of(chunks)
    assert json.loads(call["arguments"]) == {"city": "Paris", "unit": "celsius"}
    assert content_of(chunks) == ""
    assert finish.choices[0].finish_reason == "tool_calls" and finish.choices[0].delta.tool_calls is None
    assert usage.choices == [] and usage.usage.completion_tokens == (len("get_weather") + len(PARIS)) // 4 + 1


def test_the_sdk_stream_helper_accumulates_the_call(standins: StandIns) -> None:
    async def scenario() -> Any:
        async with (
            openai_client(standins) as client,
            client.chat.completions.stream(
                model="gpt-4o-mini", messages=[{"role": "user", "content": ASK_WEATHER}], tools=[WEATHER]
            ) as stream,
        ):
            return await stream.get_final_completion()

    completion = asyncio.run(scenario())

    [call] = completion.choices[0].message.tool_calls
    assert (call.function.name, call.function.arguments) == ("get_weather", PARIS)
    assert completion.choices[0].finish_reason == "tool_calls"


def test_two_directives_call_two_tools_at_once_json_and_streamed(standins: StandIns) -> None:
    messages = [{"role": "user", "content": ASK_BOTH}]

    async def scenario() -> tuple[Any, list[Any]]:
        async with openai_client(standins) as client:
            completion = await client.chat.completions.create(
                model="gpt-4o-mini", messages=messages, tools=[WEATHER, CLOCK]
            )
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=messages, tools=[WEATHER, CLOCK], stream=True
            )
            return completion, await collect(stream)

    completion, chunks = asyncio.run(scenario())

    calls = completion.choices[0].message.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris", "unit": "celsius"}),
        ("get_time", {"zone": "Europe/Paris"}),
    ]
    assert len({c.id for c in calls}) == 2
    streamed = tool_calls_of(chunks)
    assert [(c["name"], json.loads(c["arguments"])) for c in streamed] == [
        ("get_weather", {"city": "Paris", "unit": "celsius"}),
        ("get_time", {"zone": "Europe/Paris"}),
    ]
    assert [c["id"] for c in streamed] == [c["id"] for c in standins.requests()[1]["tool_calls"]]
    assert all(call_deltas(chunks, index)[0].id for index in (0, 1))
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_parallel_tool_calls_false_keeps_only_the_first_call(standins: StandIns) -> None:
    async def scenario() -> Any:
        async with openai_client(standins) as client:
            return await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": ASK_BOTH}],
                tools=[WEATHER, CLOCK],
                parallel_tool_calls=False,
            )

    completion = asyncio.run(scenario())

    assert [c.function.name for c in completion.choices[0].message.tool_calls] == ["get_weather"]
    assert standins.requests()[0]["body"]["parallel_tool_calls"] is False


@pytest.mark.parametrize(
    ("tool_choice", "name", "arguments"),
    [
        ("required", "get_weather", {"city": "", "unit": "celsius"}),
        ({"type": "function", "function": {"name": "get_time"}}, "get_time", {}),
    ],
)
def test_a_forced_tool_choice_calls_a_tool_without_a_directive(
    standins: StandIns, tool_choice: Any, name: str, arguments: dict[str, Any]
) -> None:
    async def scenario() -> Any:
        async with azure_openai(standins) as client:
            return await client.chat.completions.create(
                model=standins.deployment, messages=HELLO, tools=[WEATHER, CLOCK], tool_choice=tool_choice
            )

    completion = asyncio.run(scenario())

    [call] = completion.choices[0].message.tool_calls
    assert call.function.name == name
    assert json.loads(call.function.arguments) == arguments
    assert standins.requests()[0]["body"]["tool_choice"] == tool_choice


def test_a_named_tool_choice_overrides_a_directive_for_another_tool(standins: StandIns) -> None:
    async def scenario() -> Any:
        async with azure_openai(standins) as client:
            return await client.chat.completions.create(
                model=standins.deployment,
                messages=[{"role": "user", "content": ASK_BOTH}],
                tools=[WEATHER, CLOCK],
                tool_choice={"type": "function", "function": {"name": "get_time"}},
            )

    completion = asyncio.run(scenario())

    [call] = completion.choices[0].message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_time", {"zone": "Europe/Paris"})


@pytest.mark.parametrize("options", [{}, {"tools": [WEATHER], "tool_choice": "none"}])
def test_without_tools_or_with_tool_choice_none_a_directive_is_only_echoed(
    standins: StandIns, options: dict[str, Any]
) -> None:
    async def scenario() -> Any:
        async with azure_openai(standins) as client:
            return await client.chat.completions.create(
                model=standins.deployment, messages=[{"role": "user", "content": ASK_WEATHER}], **options
            )

    completion = asyncio.run(scenario())

    assert completion.choices[0].message.content == f"Echo #0: {ASK_WEATHER}"
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].finish_reason == "stop"
    assert standins.requests()[0]["tool_calls"] is None


def test_arguments_that_are_not_json_are_sent_as_written(standins: StandIns) -> None:
    async def scenario() -> Any:
        async with azure_openai(standins) as client:
            return await client.chat.completions.create(
                model=standins.deployment,
                messages=[{"role": "user", "content": 'Broken [[tool:get_weather {"city": "Par]]'}],
                tools=[WEATHER],
            )

    completion = asyncio.run(scenario())

    assert completion.choices[0].message.tool_calls[0].function.arguments == '{"city": "Par'


@pytest.mark.parametrize(
    ("text", "calls"),
    [
        ("[[tool:f]]", [("f", None)]),
        ('[[tool:f {"grid": [[1]]}]]', [("f", '{"grid": [[1]]}')]),
        ('[[tool:f {"note": "[[tool:g]]"}]]', [("f", '{"note": "[[tool:g]]"}')]),
        ('[[tool:f\n  {"a": 1}  ]] and [[tool:g]]', [("f", '{"a": 1}'), ("g", None)]),
        ('[[tool:f {"a": 1} trailing]]', [("f", '{"a": 1} trailing')]),
        ("[[tool:f!]] [[tool:f", []),
    ],
)
def test_tool_directives_are_read_up_to_the_end_of_their_json(text: str, calls: list[Any]) -> None:
    assert requested_calls(text) == calls


def test_arguments_from_a_schema_fill_the_required_properties() -> None:
    schema = {
        "type": "object",
        "properties": {
            "count": {"type": ["null", "integer"]},
            "label": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "nested": {"type": "object", "properties": {"flag": {"type": "boolean"}}, "required": ["flag"]},
            "size": {"type": "string", "enum": ["small", "large"], "default": "large"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "optional": {"type": "string"},
        },
        "required": ["count", "label", "nested", "size", "tags"],
    }

    assert json.loads(example_arguments(schema)) == {
        "count": 0,
        "label": "",
        "nested": {"flag": False},
        "size": "large",
        "tags": [],
    }


def test_a_cut_tool_call_stream_drops_mid_arguments(standins: StandIns) -> None:
    received: list[Any] = []

    async def scenario() -> None:
        async with azure_openai(standins, max_retries=0) as client:
            stream = await client.chat.completions.create(
                model=standins.deployment,
                messages=[{"role": "user", "content": f"{ASK_WEATHER} [[cut]]"}],
                tools=[WEATHER],
                stream=True,
            )
            async for chunk in stream:
                received.append(chunk)

    with pytest.raises(openai.APIConnectionError):
        asyncio.run(scenario())
    [call] = tool_calls_of(received)
    assert call["name"] == "get_weather" and PARIS.startswith(call["arguments"]) and call["arguments"] != PARIS
    assert all(chunk.choices[0].finish_reason is None for chunk in received if chunk.choices)


def test_the_answer_after_a_tool_message_echoes_the_tool_output(standins: StandIns) -> None:
    question = [{"role": "user", "content": ASK_WEATHER}]

    async def scenario() -> tuple[Any, Any, list[Any]]:
        async with azure_openai(standins) as client:
            called = await client.chat.completions.create(model=standins.deployment, messages=question, tools=[WEATHER])
            [call] = called.choices[0].message.tool_calls
            history = [
                *question,
                called.choices[0].message.model_dump(exclude_none=True),
                tool_turn(call.id, "18°C and sunny"),
            ]
            answered = await client.chat.completions.create(
                model=standins.deployment, messages=history, tools=[WEATHER]
            )
            stream = await client.chat.completions.create(
                model=standins.deployment, messages=history, tools=[WEATHER], stream=True
            )
            return called, answered, await collect(stream)

    called, answered, chunks = asyncio.run(scenario())

    assert answered.choices[0].message.content == "Tool result: 18°C and sunny"
    assert answered.choices[0].message.tool_calls is None
    assert answered.choices[0].finish_reason == "stop"
    assert content_of(chunks) == "Tool result: 18°C and sunny"
    sent = standins.requests()[1]["body"]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == called.choices[0].message.tool_calls[0].id
    assert "content" not in sent[1] or sent[1]["content"] is None
    assert sent[2] == tool_turn(called.choices[0].message.tool_calls[0].id, "18°C and sunny")
    assert [r["status"] for r in standins.requests()] == [200, 200, 200]


def test_the_answer_after_parallel_calls_echoes_every_output_in_order(standins: StandIns) -> None:
    calls = [
        {"id": "call_one", "name": "get_weather", "arguments": PARIS},
        {"id": "call_two", "name": "get_time", "arguments": "{}"},
    ]
    messages = [
        {"role": "user", "content": ASK_BOTH},
        assistant_turn(calls),
        tool_turn("call_two", "12:00"),
        {"role": "tool", "tool_call_id": "call_one", "content": [{"type": "text", "text": "18°C"}]},
    ]

    async def scenario() -> Any:
        async with openai_client(standins) as client:
            return await client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER, CLOCK])

    completion = asyncio.run(scenario())

    assert completion.choices[0].message.content == "Tool result: 12:00\nTool result: 18°C"


def test_an_empty_tool_output_does_not_repeat_the_users_call(standins: StandIns) -> None:
    messages = [
        {"role": "user", "content": ASK_WEATHER},
        assistant_turn([{"id": "call_first", "name": "get_weather", "arguments": PARIS}]),
        tool_turn("call_first", ""),
    ]

    async def scenario() -> Any:
        async with azure_openai(standins) as client:
            return await client.chat.completions.create(model=standins.deployment, messages=messages, tools=[WEATHER])

    completion = asyncio.run(scenario())

    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].message.content == "Tool result: "


def test_a_tool_output_may_ask_for_the_next_call(standins: StandIns) -> None:
    call = {"id": "call_first", "name": "get_weather", "arguments": PARIS}
    messages = [
        {"role": "user", "content": ASK_WEATHER},
        assistant_turn([call]),
        tool_turn("call_first", "18°C; now [[tool:get_time {}]]"),
    ]

    async def scenario() -> Any:
        async with azure_openai(standins) as client:
            return await client.chat.completions.create(
                model=standins.deployment, messages=messages, tools=[WEATHER, CLOCK]
            )

    completion = asyncio.run(scenario())

    [next_call] = completion.choices[0].message.tool_calls
    assert (next_call.function.name, next_call.function.arguments) == ("get_time", "{}")


def test_the_echo_counts_tool_messages_in_the_history(standins: StandIns) -> None:
    call = {"id": "call_first", "name": "get_weather", "arguments": PARIS}
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": ASK_WEATHER},
        assistant_turn([call]),
        tool_turn("call_first", "18°C"),
        {"role": "assistant", "content": "Tool result: 18°C"},
        {"role": "user", "content": "Thanks"},
    ]

    async def scenario() -> Any:
        async with azure_openai(standins) as client:
            return await client.chat.completions.create(model=standins.deployment, messages=messages, tools=[WEATHER])

    completion = asyncio.run(scenario())

    assert completion.choices[0].message.content == "Echo #4: Thanks"
    expected = sum(len(m.get("content") or "") // 4 + 1 for m in messages)
    expected += (len("get_weather") + len(PARIS)) // 4 + len(json.dumps([WEATHER])) // 4
    assert completion.usage.prompt_tokens == expected


_CALLED = assistant_turn([{"id": "call_a", "name": "get_weather", "arguments": PARIS}])
_CALLED_TWICE = assistant_turn(
    [
        {"id": "call_a", "name": "get_weather", "arguments": PARIS},
        {"id": "call_b", "name": "get_time", "arguments": "{}"},
    ]
)
_ORPHAN = "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'."
_UNANSWERED = (
    "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. "
    "The following tool_call_ids did not have response messages: "
)


@pytest.mark.parametrize(
    ("messages", "param", "code", "message"),
    [
        pytest.param([*HELLO, tool_turn("call_a", "18°C")], "messages.[1].role", None, _ORPHAN, id="orphan"),
        pytest.param(
            [
                *HELLO,
                _CALLED,
                tool_turn("call_a", "18°C"),
                {"role": "assistant", "content": "ok"},
                tool_turn("call_a", "x"),
            ],
            "messages.[4].role",
            None,
            _ORPHAN,
            id="tool-after-a-plain-assistant",
        ),
        pytest.param(
            [*HELLO, _CALLED, tool_turn("call_z", "18°C")],
            "messages.[2].tool_call_id",
            None,
            "Invalid parameter: 'tool_call_id' of 'call_z' not found in 'tool_calls' of previous message.",
            id="unknown-id",
        ),
        pytest.param(
            [*HELLO, _CALLED, tool_turn("call_a", "18°C"), tool_turn("call_a", "19°C")],
            "messages.[3].tool_call_id",
            None,
            "Invalid parameter: Duplicate value for 'tool_call_id' of 'call_a' in message[3]",
            id="answered-twice",
        ),
        pytest.param(
            [*HELLO, _CALLED_TWICE, tool_turn("call_a", "18°C"), {"role": "user", "content": "and?"}],
            "messages.[3].role",
            None,
            _UNANSWERED + "call_b",
            id="one-of-two-unanswered",
        ),
        pytest.param(
            [*HELLO, _CALLED_TWICE, {"role": "user", "content": "and?"}],
            "messages.[2].role",
            None,
            _UNANSWERED + "call_a, call_b",
            id="none-answered",
        ),
        pytest.param([*HELLO, _CALLED], "messages.[1].role", None, _UNANSWERED + "call_a", id="unanswered-at-the-end"),
        pytest.param(
            [*HELLO, _CALLED, {"role": "tool", "content": "18°C"}],
            "messages.[2].tool_call_id",
            None,
            "Missing parameter 'tool_call_id': messages with role 'tool' must have a 'tool_call_id'.",
            id="no-tool-call-id",
        ),
        pytest.param(
            [*HELLO, assistant_turn([{"id": "call_" + "x" * 36, "name": "get_weather", "arguments": "{}"}])],
            "messages[1].tool_calls[0].id",
            "string_above_max_length",
            "Invalid 'messages[1].tool_calls[0].id': string too long. Expected a string with maximum length 40, "
            "but got a string with length 41 instead.",
            id="id-too-long",
        ),
        pytest.param(
            [*HELLO, {"role": "assistant", "content": None, "tool_calls": []}],
            "messages[1].tool_calls",
            "empty_array",
            "Invalid 'messages[1].tool_calls': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            id="empty-tool-calls",
        ),
        pytest.param(
            [
                *HELLO,
                {"role": "assistant", "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "f"}}]},
            ],
            "messages[1].tool_calls[0].function.arguments",
            "missing_required_parameter",
            "Missing required parameter: 'messages[1].tool_calls[0].function.arguments'.",
            id="no-arguments",
        ),
    ],
)
def test_tool_messages_out_of_sequence_are_the_apis_400(
    standins: StandIns, messages: list[Any], param: str, code: str | None, message: str
) -> None:
    async def scenario() -> None:
        async with azure_openai(standins, max_retries=0) as client:
            await client.chat.completions.create(model=standins.deployment, messages=messages, tools=[WEATHER, CLOCK])

    with pytest.raises(openai.BadRequestError) as caught:
        asyncio.run(scenario())
    error = caught.value
    assert (error.param, error.code, error.type) == (param, code, "invalid_request_error")
    assert error.body["message"] == message
    [request] = standins.requests()
    assert (request["status"], request["tool_calls"]) == (400, None)


@pytest.mark.parametrize(
    ("options", "param", "code", "message"),
    [
        pytest.param(
            {"tool_choice": "auto"},
            "tool_choice",
            None,
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            id="choice-without-tools",
        ),
        pytest.param(
            {"parallel_tool_calls": True},
            "parallel_tool_calls",
            None,
            "Invalid value for 'parallel_tool_calls': "
            "'parallel_tool_calls' is only allowed when 'tools' are specified.",
            id="parallel-without-tools",
        ),
        pytest.param(
            {"tools": [WEATHER], "tool_choice": "always"},
            "tool_choice",
            "invalid_value",
            "Invalid value: 'always'. Supported values are: 'none', 'auto', and 'required'.",
            id="unknown-choice",
        ),
        pytest.param(
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_time"}}},
            "tool_choice",
            None,
            "Invalid value for 'tool_choice': no function named 'get_time' was specified in the 'tools' parameter.",
            id="choice-names-an-undeclared-function",
        ),
        pytest.param(
            {"tools": []},
            "tools",
            "empty_array",
            "Invalid 'tools': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            id="empty-tools",
        ),
        pytest.param(
            {"tools": [{"type": "function", "function": {"name": "get weather"}}]},
            "tools[0].function.name",
            "invalid_value",
            "Invalid 'tools[0].function.name': string does not match pattern. "
            "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
            id="bad-name",
        ),
        pytest.param(
            {"tools": [WEATHER, {"type": "function"}]},
            "tools[1].function",
            "missing_required_parameter",
            "Missing required parameter: 'tools[1].function'.",
            id="no-function",
        ),
        pytest.param(
            {"tools": [{"type": "retrieval", "function": {"name": "f"}}]},
            "tools[0].type",
            "invalid_value",
            "Invalid value: 'retrieval'. Supported values are: 'function'.",
            id="unknown-tool-type",
        ),
        pytest.param(
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]},
            "tools[0].function.parameters",
            "invalid_function_parameters",
            "Invalid schema for function 'f': "
            "schema must be a JSON Schema of 'type: \"object\"', got 'type: \"string\"'.",
            id="parameters-not-an-object-schema",
        ),
        pytest.param(
            {"tools": [WEATHER], "parallel_tool_calls": "yes"},
            "parallel_tool_calls",
            "invalid_type",
            "Invalid type for 'parallel_tool_calls': expected a boolean, but got a string instead.",
            id="parallel-not-a-boolean",
        ),
    ],
)
def test_invalid_tools_and_tool_choice_are_the_apis_400(
    standins: StandIns, options: dict[str, Any], param: str, code: str | None, message: str
) -> None:
    async def scenario() -> None:
        async with openai_client(standins, max_retries=0) as client:
            await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, **options)

    with pytest.raises(openai.BadRequestError) as caught:
        asyncio.run(scenario())
    error = caught.value
    assert (error.param, error.code, error.type) == (param, code, "invalid_request_error")
    assert error.body["message"] == message
    assert standins.requests()[0]["status"] == 400


async def until_held(standins: StandIns, name: str, count: int) -> None:
    """Wait, bounded, until `count` answers are held under `name`."""
    for _ in range(1000):
        if standins.model.holds.waiting(name) == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} answers were not held under {name}")


def test_hold_keeps_answers_back_until_released(standins: StandIns) -> None:
    """JSON answers wait before their first byte, streams after their first content chunk."""

    async def scenario() -> tuple[str, list[Any]]:
        async with azure_openai(standins) as client:
            asking = asyncio.ensure_future(
                client.chat.completions.create(
                    model=standins.deployment, messages=[{"role": "user", "content": "Wait [[hold:json]]"}]
                )
            )
            stream = await client.chat.completions.create(
                model=standins.deployment,
                messages=[{"role": "user", "content": "one two three [[hold:s]]"}],
                stream=True,
            )
            received = []
            async for chunk in stream:
                received.append(chunk)
                if chunk.choices and chunk.choices[0].delta.content:
                    break
            await until_held(standins, "json", 1)
            await until_held(standins, "s", 1)
            assert not asking.done()
            assert content_of(received) == "Echo #0: "
            standins.model.holds.release("s")
            received += await collect(stream)
            assert standins.model.holds.waiting("s") == 0 and not asking.done()
            standins.model.holds.release("json")
            completion = await asking
            return completion.choices[0].message.content, received

    answer, chunks = asyncio.run(scenario())

    assert answer == "Echo #0: Wait [[hold:json]]"
    assert content_of(chunks) == "Echo #0: one two three [[hold:s]]"
    assert standins.model.holds.waiting("json") == 0


# Journals over HTTP, and the command line


def test_journals_are_readable_and_clearable_over_http(standins: StandIns) -> None:
    async def scenario() -> None:
        async with azure_openai(standins) as client:
            await client.chat.completions.create(model=standins.deployment, messages=HELLO)

    asyncio.run(scenario())

    assert get_json(f"{standins.model_url}/_standin/requests") == standins.requests()
    assert get_json(f"{standins.identity_url}/_standin/token-requests") == standins.token_requests()
    assert status_of(urllib.request.Request(f"{standins.model_url}/_standin/clear", method="POST")) == 204
    assert standins.requests() == [] and standins.token_requests() == []


def test_unknown_paths_are_recorded_not_found(standins: StandIns) -> None:
    assert status_of(urllib.request.Request(f"{standins.model_url}/openai/engines")) == 404
    assert standins.requests()[0]["path"] == "/openai/engines"


def test_the_model_list_needs_the_same_credentials_and_is_not_journaled(standins: StandIns) -> None:
    models = f"{standins.model_url}/openai/models?api-version=2024-10-21"
    assert status_of(urllib.request.Request(models)) == 401
    assert status_of(urllib.request.Request(f"{standins.model_url}/v1/models")) == 401
    key = {"Authorization": f"Bearer {standins.openai_api_key}"}
    assert status_of(urllib.request.Request(f"{standins.model_url}/v1/models", headers=key)) == 200
    assert standins.model.models_requests == 1
    assert standins.requests() == []


def test_command_line_serves_both_and_prints_the_environment() -> None:
    root = Path(__file__).resolve().parents[1]
    command = [
        sys.executable,
        "-m",
        "standins",
        "--host",
        "127.0.0.1",
        "--model-port",
        "0",
        "--identity-port",
        "0",
    ]
    environment = {**os.environ, "PYTHONPATH": str(root)}
    with subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True, env=environment) as process:
        try:
            assert process.stdout is not None
            env = dict(process.stdout.readline().strip().split("=", 1) for _ in range(4))
            assert set(env) == {
                "IDENTITY_ENDPOINT",
                "IDENTITY_HEADER",
                "AZURE_OPENAI_ENDPOINT",
                "AZURE_OPENAI_CHAT_DEPLOYMENT",
            }
            token_url = f"{env['IDENTITY_ENDPOINT']}?api-version=2019-08-01&resource={AZURE_RESOURCE}"
            token = get_json(urllib.request.Request(token_url, headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]}))
            assert token["resource"] == AZURE_RESOURCE
            assert get_json(f"{env['AZURE_OPENAI_ENDPOINT']}/_standin/requests") == []
        finally:
            process.terminate()
