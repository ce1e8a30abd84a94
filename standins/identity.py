"""Managed identity stand-in: speaks the App Service / Azure Functions token endpoint.

In Azure Functions and App Service the platform sets ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER``.
azure-identity's ``ManagedIdentityCredential`` (and so ``DefaultAzureCredential``) then sends::

    GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=https://cognitiveservices.azure.com
    X-IDENTITY-HEADER: {IDENTITY_HEADER}
    Metadata: true                                  (only the sync credential, through msal)

The scope ``https://cognitiveservices.azure.com/.default`` arrives as that ``resource`` (the
``/.default`` suffix stripped). A user-assigned identity is chosen by one of ``client_id``,
``object_id`` / ``principal_id`` or ``mi_res_id`` (the async credential sends an
``identity_config={"resource_id": ...}`` as ``resource_id``, also accepted here). The answer is::

    {"access_token": "...", "expires_on": "1700003600", "resource": "...",
     "token_type": "Bearer", "client_id": "..."}

with ``expires_on`` a string of epoch seconds, as the real endpoint sends it. A missing or wrong
``X-IDENTITY-HEADER`` gets 401 with the endpoint's ``{"statusCode": ..., "message": ...}`` body.

Tokens are shaped like the JWTs Entra ID issues (claims ``aud``, ``appid``, ``oid``, ``tid``,
``exp``...) but signed with random bytes: to the stand-ins they are opaque. The stand-in remembers
the resource and client ID each was issued for, so the chat completions stand-in accepts exactly
the tokens a real resource would. A test can make the resource refuse tokens before they expire:
``revoke(token)`` one it issued, or issue them all refused while ``refusing`` is set.
"""

from __future__ import annotations

import base64
import copy
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

TOKEN_PATH = "/msi/token"
API_VERSION = "2019-08-01"
TOKEN_LIFETIME_SECONDS = 3600

# Query parameters that select a user-assigned identity instead of the system-assigned one.
_SELECTORS = ("client_id", "object_id", "principal_id", "mi_res_id", "resource_id")


class Journal:
    """A thread-safe list of request records, read from another thread than the one writing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []

    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._entries.append(entry)
        return entry

    def update(self, entry: dict[str, Any], **fields: Any) -> None:
        with self._lock:
            entry.update(fields)

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclass(frozen=True)
class Grant:
    """What one issued token stands for."""

    resource: str
    client_id: str
    expires_on: int

    def is_valid_for(self, resource: str) -> bool:
        return self.resource.rstrip("/") == resource.rstrip("/") and self.expires_on > time.time()


def _base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _error(status: int, message: str) -> web.Response:
    body = {"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())}
    return web.json_response(body, status=status)


class IdentityStandIn:
    """The token endpoint of a managed identity, with a journal of every token request."""

    def __init__(self, identity_header: str | None = None) -> None:
        self.identity_header = identity_header or secrets.token_urlsafe(24)
        self.system_client_id = str(uuid.uuid4())
        self.tenant_id = str(uuid.uuid4())
        self.journal = Journal()
        self._grants: dict[str, Grant] = {}
        self._lock = threading.Lock()
        self.refusing = False  # tokens issued while set are refused by the resource

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", TOKEN_PATH, self._token)
        app.router.add_route("*", TOKEN_PATH + "/", self._token)
        app.router.add_get("/_standin/token-requests", self._journal_view)
        return app

    def grant(self, token: str) -> Grant | None:
        """The grant a token was issued for, or None for a token this endpoint never issued."""
        with self._lock:
            return self._grants.get(token)

    def revoke(self, token: str) -> None:
        """From now on the resource refuses `token` (401), as Entra ID revocation would have it."""
        with self._lock:
            self._grants.pop(token, None)

    def clear(self) -> None:
        self.journal.clear()

    async def _journal_view(self, request: web.Request) -> web.Response:
        return web.json_response(self.journal.entries())

    async def _token(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        entry = self.journal.record(
            {
                "method": request.method,
                "path": request.path,
                "query": query,
                "headers": {
                    name.lower(): request.headers[name]
                    for name in ("Metadata", "User-Agent")
                    if name in request.headers
                },
                "header_valid": secrets.compare_digest(
                    request.headers.get("X-IDENTITY-HEADER", "").encode(), self.identity_header.encode()
                ),
                "status": None,
                "resource": query.get("resource"),
                "client_id": None,
                "token": None,
            }
        )
        response, grant_fields = self._answer(request.method, query, entry["header_valid"])
        self.journal.update(entry, status=response.status, **grant_fields)
        return response

    def _answer(self, method: str, query: dict[str, str], header_valid: bool) -> tuple[web.Response, dict[str, str]]:
        """The response, and the client ID and token it issued (empty when it issued none)."""
        if method != "GET":
            return _error(405, f"The requested method {method} is not allowed."), {}
        if not header_valid:
            return _error(401, "Unauthorized. The X-IDENTITY-HEADER header is missing or invalid."), {}
        if query.get("api-version") != API_VERSION:
            return _error(400, f"Unsupported or missing api-version; use {API_VERSION}."), {}
        resource = query.get("resource")
        if not resource:
            return _error(400, "Required query parameter 'resource' is missing."), {}
        selectors = [name for name in _SELECTORS if query.get(name)]
        if len(selectors) > 1:
            return _error(400, "Specify at most one of client_id, object_id, principal_id, mi_res_id."), {}

        client_id = self._client_id(selectors[0], query[selectors[0]]) if selectors else self.system_client_id
        expires_on = int(time.time()) + TOKEN_LIFETIME_SECONDS
        token = self._token_for(resource, client_id, expires_on)
        with self._lock:
            if not self.refusing:
                self._grants[token] = Grant(resource=resource, client_id=client_id, expires_on=expires_on)

        response = web.json_response(
            {
                "access_token": token,
                "expires_on": str(expires_on),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": client_id,
            }
        )
        return response, {"client_id": client_id, "token": token}

    def _token_for(self, resource: str, client_id: str, expires_on: int) -> str:
        """A JWT-shaped token with the claims a real one carries; its signature is random bytes.

        Clients only pass tokens on (azure-identity decodes the claims for debug logging); the
        stand-in recognises its tokens by their exact value, never by their claims.
        """
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": "standin"}
        claims = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": expires_on,
            "appid": client_id,
            "oid": str(uuid.uuid5(uuid.NAMESPACE_OID, client_id)),
            "sub": str(uuid.uuid5(uuid.NAMESPACE_OID, client_id)),
            "tid": self.tenant_id,
            "idtyp": "app",
            "jti": secrets.token_urlsafe(16),
        }
        parts = (_base64url(json.dumps(header).encode()), _base64url(json.dumps(claims).encode()))
        return ".".join((*parts, _base64url(secrets.token_bytes(64))))

    @staticmethod
    def _client_id(selector: str, value: str) -> str:
        if selector == "client_id":
            return value
        # Identities named by object or resource ID get a stable client ID of their own.
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{selector}:{value}"))
