"""CORS for front ends served from another origin (CHAT_ALLOWED_ORIGINS), preflight included.

In Azure, the platform's own CORS setting answers before the app does when it is set; leave it
empty to let these rules apply, so `func start`, uvicorn and Azure behave alike.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import Response

from chat.web.errors import OriginNotAllowed

ALLOWED_HEADERS = ("Content-Type", "Idempotency-Key", "X-Functions-Key", "Authorization")
EXPOSED_HEADERS = ("Retry-After", "Idempotent-Replayed")
MAX_AGE_SECONDS = 600


def allowed_origin(origin: str | None, allowed: tuple[str, ...]) -> str | None:
    if not origin:
        return None
    if "*" in allowed:
        return "*"
    return origin if origin.rstrip("/") in allowed else None


def preflight(request: Request, methods: Iterable[str], allowed: tuple[str, ...]) -> Response:
    """Answer OPTIONS: a CORS preflight when it is one, else the route's methods."""
    methods = tuple(methods)
    origin = request.headers.get("origin")
    requested = request.headers.get("access-control-request-method")
    if not origin or not requested:
        return Response(status_code=204, headers={"Allow": ", ".join((*methods, "OPTIONS"))})
    granted = allowed_origin(origin, allowed)
    if granted is None:
        raise OriginNotAllowed(f"Origin {origin[:100]} is not allowed; see CHAT_ALLOWED_ORIGINS.")
    return Response(
        status_code=204,
        headers={
            "Access-Control-Allow-Origin": granted,
            "Access-Control-Allow-Methods": ", ".join(methods),
            "Access-Control-Allow-Headers": ", ".join(ALLOWED_HEADERS),
            "Access-Control-Max-Age": str(MAX_AGE_SECONDS),
            "Vary": "Origin",
        },
    )


def add_headers(response: Response, origin: str | None, allowed: tuple[str, ...]) -> None:
    granted = allowed_origin(origin, allowed)
    if granted is not None:
        response.headers["Access-Control-Allow-Origin"] = granted
        response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)
        response.headers["Vary"] = "Origin"
