"""What every front door shares: routes matched on the raw path, the dispatcher, the body reader,
the owner, paging, IDs from the URL and the one error mapper.

The same handlers serve the Functions host (through the HTTP streams extension, which hands them
Starlette requests) and uvicorn (chat.local). Each route accepts every method and answers a method
it does not support with a JSON 405, so both hosts behave alike.

A handler is given its dependencies: the host passes `handle` an async callable that returns
them (built once per worker), and `handle` resolves them for the handler. The body of an error is
the door's: a route names the shape its door's clients read.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chat.dependencies import Dependencies
from chat.engine.errors import ChatError, ConfigurationError
from chat.engine.ids import validate_conversation_id
from chat.web import answers, cors
from chat.web.callers import owner_of
from chat.web.errors import (
    BadRequest,
    BodyTooLarge,
    MethodNotAllowed,
    RouteNotFound,
    UnsupportedMediaType,
    headers_of,
    status_of,
)

log = logging.getLogger(__name__)

JSON = "application/json"
MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")

_ENCODED_SLASH = re.compile("%2f", re.IGNORECASE)

# The parameters a route matched, raw (still percent-encoded): `{id}` is the key "id".
Params = Mapping[str, str]
# The host's dependencies, built on first use; raises ConfigurationError when a setting is wrong.
DependenciesProvider = Callable[[], Awaitable[Dependencies]]
Handler = Callable[[Request, Params, Dependencies], Awaitable[Response]]
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


@dataclass(frozen=True)
class Route:
    name: str
    path: str  # under /api; a `{name}` segment is a parameter, percent-encoded in the URL
    methods: Mapping[str, Handler]
    error_body: ErrorBody = error_document
    # What the route answers when its dependencies cannot be built, instead of the error (health).
    misconfigured: Callable[[ConfigurationError], Response] | None = None
    # What a parameter's raw segment must be for the path to be this route's; a segment it refuses
    # is no route (404), whatever the method, not this route's 405.
    accepts: Mapping[str, Callable[[str], bool]] = field(default_factory=dict)

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.split("/"))

    def match(self, path: str) -> dict[str, str] | None:
        """The route's parameters in a raw path, as the Functions host matches it: literal segments
        in any case, a parameter any one segment; None if the path is not this route's."""
        segments = _segments(path)
        if segments is None or len(segments) != len(self.segments):
            return None
        params = {}
        for template, segment in zip(self.segments, segments, strict=True):
            if template.startswith("{"):
                name = template[1:-1]
                if name in self.accepts and not self.accepts[name](segment):
                    return None
                params[name] = segment
            elif template != segment.lower():
                return None
        return params


def match(routes: tuple[Route, ...], path: str) -> Route | None:
    """The route of a raw (still percent-encoded) path under /api."""
    return next((route for route in routes if route.match(path) is not None), None)


async def handle(route: Route, request: Request, dependencies: DependenciesProvider) -> Response:
    """Answer a request the host routed to `route`, CORS headers included."""
    try:
        response = await _answer(route, request, dependencies)
        allowed = await _allowed_origins(dependencies)
    except Exception:
        log.exception("unexpected failure on %s %s", request.method, route.name)
        return error_response(ChatError("Something went wrong; try again."), route.error_body)
    cors.add_headers(response, request.headers.get("origin"), allowed)
    return response


async def _answer(route: Route, request: Request, dependencies: DependenciesProvider) -> Response:
    try:
        return await _dispatch(route, request, dependencies)
    except ChatError as e:
        return error_response(e, route.error_body)


async def _dispatch(route: Route, request: Request, dependencies: DependenciesProvider) -> Response:
    # The Functions host routes a path before the handler sees it, and tolerates what uvicorn's
    # match() does not (a trailing slash); matching again here gives both hosts one reading.
    params = route.match(raw_path(request))
    if params is None:
        raise RouteNotFound()
    if request.method == "OPTIONS":
        settings = (await dependencies()).settings
        return cors.preflight(request, route.methods, settings.allowed_origins)
    handler = route.methods.get(request.method)
    if handler is None:
        raise MethodNotAllowed(request.method, tuple(route.methods))
    try:
        deps = await dependencies()
    except ConfigurationError as e:
        if route.misconfigured is None:
            raise
        return route.misconfigured(e)
    return await handler(request, params, deps)


async def _allowed_origins(dependencies: DependenciesProvider) -> tuple[str, ...]:
    """Every answer, an error too, carries the CORS headers, so that a page can read why it
    failed; settings that cannot be read allow no origin (the answer says what is wrong)."""
    try:
        deps = await dependencies()
    except ConfigurationError:
        return ()
    return deps.settings.allowed_origins


# A streamed answer is not cached, nor buffered by a proxy that honours the header (nginx).
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def replayed_header(replayed: bool) -> dict[str, str]:
    """The header of an answer an Idempotency-Key replayed, on both doors."""
    return {"Idempotent-Replayed": "true"} if replayed else {}


def owner(request: Request, deps: Dependencies) -> str:
    """Who is calling: the owner of every conversation the request touches."""
    settings = deps.settings
    deps.ignored_principals.notice(
        request.headers, trust_client_principal=settings.trust_client_principal, platform_auth=settings.platform_auth
    )
    return owner_of(request.headers, trust_client_principal=settings.trust_client_principal)


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


def raw_path(request: Request) -> str:
    """The path as the client sent it, still percent-encoded, without the query."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    return raw.decode("latin-1").split("?", 1)[0]


def _segments(path: str) -> list[str] | None:
    """The segments of a raw path after `/api`, or None for a path outside /api or one with an
    empty segment (a doubled or trailing slash) or a `.` or `..` segment: a path names one thing,
    never the same thing as a path without that segment, nor a conversation whose ID is the rest."""
    root, _, rest = path.partition("/")
    prefix, _, rest = rest.partition("/")
    segments = rest.split("/")
    if root or prefix.lower() != "api" or any(s in ("", ".", "..") for s in segments):
        return None
    return segments
