"""The same handlers under uvicorn, on the same paths as the Functions host: `uvicorn chat.local:app`.

Routing matches the raw, still percent-encoded path, as the Functions host does, so a
conversation ID holding `/` (sent as %2F) reaches the same route under both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import http
from .dependencies import close_dependencies
from .errors import ChatError


async def _dispatch(request: Request) -> Response:
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    route = http.match(raw_path.decode("latin-1").split("?", 1)[0])
    if route is None:
        return http.error_response(ChatError("No such route.", code="not_found", status=404))
    return await http.handle(route, request)


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    await close_dependencies()


app = Starlette(routes=[Route("/{path:path}", _dispatch, methods=list(http.ALL_METHODS))], lifespan=_lifespan)
