"""Driving the stand-ins as the product does, for the tests of the stand-ins: a managed identity
environment and nothing else credential-like, outbound connections to loopback only, the keyless
Azure OpenAI client and the OpenAI one, and reading what they answer."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from azure.identity.aio import ManagedIdentityCredential, get_bearer_token_provider

from standins import AZURE_SCOPE, StandIns

API_VERSION = "2024-10-21"
HELLO = [{"role": "user", "content": "Hello"}]

CREDENTIAL_VARIABLES = (
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
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def refuse_outside_loopback(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
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


def managed_identity_env(monkeypatch: pytest.MonkeyPatch, standins: StandIns) -> None:
    """The environment Azure Functions gives a managed identity, and nothing else credential-like."""
    for name in CREDENTIAL_VARIABLES + PROXY_VARIABLES:
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


def openai_client(standins: StandIns, **options: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=standins.model_url + "/v1", api_key=standins.openai_api_key, **options)


async def collect(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]


def content_of(chunks: list[Any]) -> str:
    return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)


def status_of(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        with error:
            return error.code
