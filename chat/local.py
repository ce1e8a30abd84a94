"""The same handlers under uvicorn, on the same paths as the Functions host: `uvicorn chat.local:app`.

Routing matches the raw, still percent-encoded path, as the Functions host does, so a
conversation ID holding `/` (sent as %2F) reaches the same route under both, and any decoded
character (a newline included) reaches the handler, which then says what is wrong with it.
Handlers are given the worker's dependencies, built on first use and closed at shut-down.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from chat.dependencies import close_dependencies, get_dependencies
from chat.engine.errors import RouteNotFound
from chat.web import routes
from chat.web.toolkit import error_response, handle, raw_path


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    request = Request(scope, receive)
    route = routes.match(raw_path(request))
    response: Response
    if route is None:
        response = error_response(RouteNotFound())
    else:
        response = await handle(route, request, get_dependencies)
    await response(scope, receive, send)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await close_dependencies()
            await send({"type": "lifespan.shutdown.complete"})
            return
