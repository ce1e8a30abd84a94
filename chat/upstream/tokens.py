"""Bearer tokens for the model endpoint, from the app's credential.

The token in hand is used until it is within REFRESH_SECONDS of expiring (as azure-identity's
`get_bearer_token_provider` does), or until the model refuses it (401): then `renew` asks the
credential for a fresh one. A credential keeps its tokens in a cache of its own and would hand the
refused one back; a claims challenge (a token issued no earlier than now, what a resource sends
after a revocation) is the request azure-identity answers without that cache.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError

log = logging.getLogger(__name__)

REFRESH_SECONDS = 300


class BearerTokens:
    """An async callable the openai SDK asks for a token before every request."""

    def __init__(self, credential: AsyncTokenCredential, scope: str) -> None:
        self._credential = credential
        self._scope = scope
        self._token: AccessToken | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> str:
        token = self._token
        if token is None or token.expires_on - REFRESH_SECONDS <= time.time():
            async with self._lock:
                if self._token is token:
                    self._token = await self._credential.get_token(self._scope)
                token = self._token
        assert token is not None
        return token.token

    async def renew(self) -> bool:
        """The model refused the token in hand: get a fresh one. False if the credential cannot
        give one on demand (the Azure CLI's cannot); the refusal then stands."""
        refused = self._token
        async with self._lock:
            if self._token is not refused:
                return True  # a concurrent request renewed it already
            try:
                self._token = await self._credential.get_token(self._scope, claims=_issued_from_now())
            except ClientAuthenticationError as e:
                log.warning("no fresh token for the model: %s", e.message)
                return False
        return True


def _issued_from_now() -> str:
    return json.dumps({"access_token": {"nbf": {"essential": True, "value": str(int(time.time()))}}})
