"""What every front door shares: the owner check, the body reader, paging, IDs from the URL and
the one error mapper. Routes and the dispatcher are routing.py's.

A handler is given its dependencies, and, through `owned`, the caller's owner. The body of an
error is the door's: a route names the shape its door's clients read.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chat.dependencies import Dependencies
from chat.engine.errors import ChatError
from chat.engine.ids import validate_conversation_id
from chat.web import answers
from chat.web.callers import owner_of
from chat.web.errors import (
    BadRequest,
    BodyTooLarge,
    UnsupportedMediaType,
    headers_of,
    status_of,
)

log = logging.getLogger(__name__)

JSON = "application/json"
MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200

_ENCODED_SLASH = re.compile("%2f", re.IGNORECASE)

# The parameters a route matched, raw (still percent-encoded): `{id}` is the key "id".
Params = Mapping[str, str]
# The host's dependencies, built on first use; raises ConfigurationError when a setting is wrong.
DependenciesProvider = Callable[[], Awaitable[Dependencies]]
Handler = Callable[[Request, Params, Dependencies], Awaitable[Response]]
# A handler given the caller's owner too (owned).
OwnedHandler = Callable[[Request, Params, Dependencies, str], Awaitable[Response]]
ErrorBody = Callable[[ChatError], dict[str, Any]]


def error_document(error: ChatError) -> dict[str, Any]:
    """The error body of the AI Chat Protocol routes (answers.ErrorBody)."""
    return answers.error_body(error).model_dump()


def error_response(error: ChatError, body: ErrorBody = error_document) -> JSONResponse:
    """The one error mapper: the error's status and headers (errors.STATUSES), the body in the door's shape."""
    status = status_of(error)
    if status >= 500:
        log.warning("%s %s: %s", status, error.code, error.message)
    return JSONResponse(body(error), status_code=status, headers=headers_of(error))


# A streamed answer is not cached, nor buffered by a proxy that honours the header (nginx).
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def replayed_header(replayed: bool) -> dict[str, str]:
    """The header of an answer an Idempotency-Key replayed, on both doors."""
    return {"Idempotent-Replayed": "true"} if replayed else {}


def owned(handler: OwnedHandler) -> Handler:
    """The owner check, said once: the handler is handed who is calling, the owner of every
    conversation the request touches (chat.web.callers), or the request is refused (401)."""

    @functools.wraps(handler)
    async def with_owner(request: Request, params: Params, deps: Dependencies) -> Response:
        settings = deps.settings
        deps.ignored_principals.notice(
            request.headers,
            trust_client_principal=settings.trust_client_principal,
            platform_auth=settings.platform_auth,
        )
        owner = owner_of(request.headers, trust_client_principal=settings.trust_client_principal)
        return await handler(request, params, deps, owner)

    return with_owner


async def read_body(request: Request) -> bytes:
    """The body of a JSON request, at most MAX_BODY_BYTES, refused unread if it is not JSON."""
    _require_json(request.headers.get("content-type"))
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLarge(f"The body is larger than {MAX_BODY_BYTES:,} bytes.", code="request_too_large")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge(f"The body is larger than {MAX_BODY_BYTES:,} bytes.", code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _require_json(content_type: str | None) -> None:
    """A body is read only when sent as application/json (any case; a charset only if UTF-8).

    Other types are not merely tidiness: a browser sends text/plain and form bodies across origins
    with no CORS preflight, so accepting them would let any web page post turns past the CORS rules.
    """
    media_type, *parameters = (content_type or "").split(";")
    if media_type.strip().lower() != JSON:
        raise UnsupportedMediaType(f"Send the body as {JSON} (the Content-Type header).")
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            raise UnsupportedMediaType(f"A JSON body is UTF-8: send {JSON} with charset=utf-8 or no charset.")


def paging(request: Request) -> tuple[int, str | None]:
    """The page size (`limit`) and the opaque `cursor` of a list request."""
    raw = request.query_params.get("limit")
    if raw is None:
        limit = DEFAULT_PAGE_SIZE
    elif raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_PAGE_SIZE:
        limit = int(raw)
    else:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}.", code="invalid_limit")
    return limit, request.query_params.get("cursor") or None


def conversation_id_of(segment: str) -> str:
    """The conversation ID of the `{id}` segment a route matched, percent-decoded once.

    The segment comes from the raw path, because an ID may contain `/` (sent as %2F), which a
    decoded path can no longer tell apart from a separator. The Functions host keeps %2F undecoded
    and forwards it to the worker re-encoded (%252F), so after decoding, a remaining `%2F` also
    stands for `/`; uvicorn is given the same rule, so both hosts read the same ID. An ID holding
    the text `%2F` itself therefore cannot be named in a URL (it can in `sessionState`).
    """
    try:
        value = unquote(segment, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise BadRequest("The conversation ID is not UTF-8.", code="invalid_conversation_id") from None
    return validate_conversation_id(_ENCODED_SLASH.sub("/", value))
