"""Who is calling: the owner every conversation belongs to.

Behind Static Web Apps or App Service authentication the platform puts the signed-in user in
`x-ms-client-principal` (base64 JSON). A direct caller could forge that header, so it is honoured
only when the deployment says it is trustworthy (CHAT_TRUST_CLIENT_PRINCIPAL=true); then a request
without it is refused, so anonymous users never share one owner. Otherwise every caller is the
holder of the function key (a bot, a backend) or the local developer: the owner `app`.

Behind App Service authentication (WEBSITE_AUTH_ENABLED=True) without that trust, every signed-in
user is the owner `app`, and they share one list: IgnoredPrincipals says so, once in the log and
in /api/health, from the first request that carries a principal.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping

from chat.web.errors import Unauthenticated

log = logging.getLogger(__name__)

PRINCIPAL_HEADER = "x-ms-client-principal"
APP_OWNER = "app"
MAX_PRINCIPAL_HEADER_CHARS = 16 * 1024
# App Service authentication puts the user's object ID in one of these claims.
OBJECT_ID_CLAIMS = (
    "http://schemas.microsoft.com/identity/claims/objectidentifier",
    "oid",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",
    "sub",
)


PRINCIPAL_IGNORED = (
    "App Service authentication is on (WEBSITE_AUTH_ENABLED=True) and requests carry "
    "x-ms-client-principal, but CHAT_TRUST_CLIENT_PRINCIPAL is not true: every signed-in user is "
    "the one owner 'app' and can read, continue and delete the others' conversations. Set "
    "CHAT_TRUST_CLIENT_PRINCIPAL=true to give each user their own, unless every caller is one "
    "service that keeps its users apart by conversation ID."
)


class IgnoredPrincipals:
    """Whether this worker has served a signed-in user it could not tell apart from the others.

    One per worker (in its dependencies): the first such request logs a warning, and health
    reports it from then on."""

    def __init__(self) -> None:
        self.seen = False

    def notice(self, headers: Mapping[str, str], *, trust_client_principal: bool, platform_auth: bool) -> None:
        if self.seen or trust_client_principal or not platform_auth or not headers.get(PRINCIPAL_HEADER):
            return
        self.seen = True
        log.warning(PRINCIPAL_IGNORED)


def owner_of(headers: Mapping[str, str], *, trust_client_principal: bool) -> str:
    if not trust_client_principal:
        return APP_OWNER
    raw = headers.get(PRINCIPAL_HEADER)
    if not raw:
        raise Unauthenticated("Sign in first: this deployment needs a signed-in user.")
    principal = _decode(raw)
    # Static Web Apps: {"identityProvider", "userId", "userDetails", "userRoles"}
    provider, user = principal.get("identityProvider"), principal.get("userId")
    if provider is None and user is None:
        # App Service authentication: {"auth_typ", "claims": [{"typ", "val"}], ...}
        provider = principal.get("auth_typ")
        user = _claim(principal.get("claims"))
    if not isinstance(provider, str) or not isinstance(user, str) or not provider or not user:
        raise Unauthenticated(
            "The client principal names no identity provider and user.", code="invalid_client_principal"
        )
    if ":" in provider:
        # The owner is `user:<provider>:<user>`; a provider without colons keeps that unambiguous.
        raise Unauthenticated("The identity provider's name holds a colon.", code="invalid_client_principal")
    return f"user:{provider}:{user}"


def _decode(raw: str) -> dict:
    if len(raw) > MAX_PRINCIPAL_HEADER_CHARS:
        raise Unauthenticated("The client principal header is too large.", code="invalid_client_principal")
    try:
        principal = json.loads(base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True))
    except (binascii.Error, ValueError, RecursionError):
        raise Unauthenticated(
            "The client principal header is not base64 JSON.", code="invalid_client_principal"
        ) from None
    if not isinstance(principal, dict):
        raise Unauthenticated("The client principal header is not a JSON object.", code="invalid_client_principal")
    return principal


def _claim(claims: object) -> str | None:
    if not isinstance(claims, list):
        return None
    values = {c.get("typ"): c.get("val") for c in claims if isinstance(c, dict) and isinstance(c.get("typ"), str)}
    for name in OBJECT_ID_CLAIMS:
        if isinstance(values.get(name), str) and values[name]:
            return values[name]
    return None
