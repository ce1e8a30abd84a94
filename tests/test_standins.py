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

from tests.standins import AZURE_RESOURCE, AZURE_SCOPE, StandIns

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
async def azure_openai(standins: StandIns, **options: Any) -> AsyncIterator[openai.AsyncAzureOpenAI]:
    """The keyless client the product builds: managed identity token provider, no key."""
    async with ManagedIdentityCredential() as credential:
        provider = get_bearer_token_provider(credential, AZURE_SCOPE)
        async with openai.AsyncAzureOpenAI(
            azure_endpoint=standins.model_url, api_version=API_VERSION, azure_ad_token_provider=provider, **options
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


def test_chunk_delay_still_streams_the_whole_answer(standins: StandIns) -> None:
    async def scenario() -> list[Any]:
        async with azure_openai(standins) as client:
            stream = await client.chat.completions.create(
                model=standins.deployment, messages=[{"role": "user", "content": "Slow [[chunk-delay:5]]"}], stream=True
            )
            return await collect(stream)

    assert content_of(asyncio.run(scenario())) == "Echo #0: Slow [[chunk-delay:5]]"


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
        "tests.standins",
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
