"""The credentials the model stand-in takes: an identity token for Azure OpenAI's resource on the
Azure route, the API key on the OpenAI-compatible one, each refused as its service refuses it."""

from __future__ import annotations

import secrets

from aiohttp import web

from .identity import IdentityStandIn
from .protocol import Reject

AZURE_RESOURCE = "https://cognitiveservices.azure.com"


class Credentials:
    def __init__(self, identity: IdentityStandIn, openai_api_key: str) -> None:
        self.identity = identity
        self.openai_api_key = openai_api_key

    def of(self, request: web.Request) -> tuple[str | None, dict[str, str] | None]:
        """Which credential the request carried, and what an identity token was issued for."""
        if "api-key" in request.headers:
            return "api-key", None
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credential:
            return None, None
        if secrets.compare_digest(credential.encode(), self.openai_api_key.encode()):
            return "openai-api-key", None
        grant = self.identity.grant(credential)
        if grant is None:
            return "unknown-bearer", None
        return "managed-identity", {"resource": grant.resource, "client_id": grant.client_id}

    def check(self, request: web.Request, *, azure: bool) -> None:
        auth, _ = self.of(request)
        if azure:
            if auth == "api-key":
                message = "Key based authentication is disabled for this resource."
                raise Reject(403, {"error": {"code": "AuthenticationTypeDisabled", "message": message}})
            _, _, token = request.headers.get("Authorization", "").partition(" ")
            grant = self.identity.grant(token) if auth == "managed-identity" else None
            if grant is None or not grant.is_valid_for(AZURE_RESOURCE):
                message = (
                    "Unauthorized. Access token is missing, invalid, audience is incorrect "
                    f"({AZURE_RESOURCE}), or have expired."
                )
                raise Reject(401, {"statusCode": 401, "message": message})
        elif auth != "openai-api-key":
            error = {
                "message": "Incorrect API key provided. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
            raise Reject(401, {"error": error})
