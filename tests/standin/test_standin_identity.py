"""The managed identity stand-in speaks the real protocol: driven here by the real azure-identity
credentials, async and sync, as a Functions app's managed identity uses them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential as SyncManagedIdentityCredential
from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

from standins import AZURE_RESOURCE, AZURE_SCOPE, StandIns


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
