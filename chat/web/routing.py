"""Routes matched on the raw path, and the dispatcher both hosts answer through.

A Route is one entry of the route table (routes.py): its path, its methods (each a handler and the
OpenAPI operation that describes it), whether it is anonymous, and its door's error shape.
function_app.py registers a function per route, chat.local matches them, and openapi.py documents
them, all from that table.

The same handlers serve the Functions host (through the HTTP streams extension, which hands them
Starlette requests) and uvicorn (chat.local). Each route accepts every method and answers a method
it does not support with a JSON 405, so both hosts behave alike. The host passes `handle` an async
callable that returns the dependencies (built once per worker), and `handle` resolves them for
the handler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from chat.engine.errors import ChatError, ConfigurationError
from chat.web import cors
from chat.web.errors import MethodNotAllowed, RouteNotFound
from chat.web.toolkit import DependenciesProvider, ErrorBody, Handler, error_document, error_response

if TYPE_CHECKING:
    from chat.web.operations import Operation

log = logging.getLogger(__name__)

ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")


@dataclass(frozen=True)
class Method:
    """One method of a route: the handler that answers it and the operation that documents it."""

    handler: Handler
    operation: Operation


@dataclass(frozen=True)
class Route:
    name: str  # the Functions host's name of its function
    path: str  # under /api; a `{name}` segment is a parameter, percent-encoded in the URL
    methods: Mapping[str, Method]
    error_body: ErrorBody = error_document  # the error shape its door's clients read
    anonymous: bool = False  # no function key, whatever CHAT_AUTH_LEVEL says, and no owner
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
    method = route.methods.get(request.method)
    if method is None:
        raise MethodNotAllowed(request.method, tuple(route.methods))
    try:
        deps = await dependencies()
    except ConfigurationError as e:
        if route.misconfigured is None:
            raise
        return route.misconfigured(e)
    return await method.handler(request, params, deps)


async def _allowed_origins(dependencies: DependenciesProvider) -> tuple[str, ...]:
    """Every answer, an error too, carries the CORS headers, so that a page can read why it
    failed; settings that cannot be read allow no origin (the answer says what is wrong)."""
    try:
        deps = await dependencies()
    except ConfigurationError:
        return ()
    return deps.settings.allowed_origins


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
