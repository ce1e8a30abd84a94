"""The route table (chat.web.routes) under uvicorn, on the same paths as the Functions host:
`uvicorn chat.local:app`.

Routing matches the raw, still percent-encoded path, as the Functions host does, so a
conversation ID holding `/` (sent as %2F) reaches the same route under both, and any decoded
character (a newline included) reaches the handler, which then says what is wrong with it.
Handlers are given the worker's dependencies, built on first use and closed at shut-down.
Background responses are run from their queue by a poll loop (chat/polling.py), the local stand-in
for function_app.py's queue trigger, started with the app when the storage names a queue service.

Outside /api it serves the chat page, the files of web/, at `/`, with the headers its
staticwebapp.config.json gives Static Web Apps (the Content-Security-Policy among them), so the page
runs here under the same rules as in Azure. Only the files that are there are served: any other
path answers the API's JSON 404, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.types import Receive, Scope, Send

from chat.dependencies import close_dependencies, get_dependencies
from chat.engine.errors import ChatError
from chat.polling import QueueWorker
from chat.web import routes
from chat.web.errors import MethodNotAllowed, RouteNotFound
from chat.web.routing import handle, raw_path
from chat.web.toolkit import error_response

WEB = Path(__file__).resolve().parent.parent / "web"
# Static Web Apps reads its configuration from this file and never serves it.
SWA_CONFIG = "staticwebapp.config.json"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
PAGE_METHODS = ("GET", "HEAD")


class Page:
    """The files of web/ by URL path, `/` for index.html, and the headers every one is sent with."""

    def __init__(self, root: Path) -> None:
        config = json.loads((root / SWA_CONFIG).read_text(encoding="utf-8"))
        self.headers: dict[str, str] = {**config.get("globalHeaders", {}), "Cache-Control": "no-cache"}
        self.files = {
            "/" + path.relative_to(root).as_posix(): path
            for path in sorted(root.rglob("*"))
            if path.is_file() and path.name != SWA_CONFIG
        }
        self.files["/"] = root / "index.html"

    def response(self, request: Request, path: str) -> Response | None:
        """The file at `path`, a 405 for a method other than GET and HEAD, or None for no file."""
        file = self.files.get(path)
        if file is None:
            return None
        if request.method not in PAGE_METHODS:
            return error_response(MethodNotAllowed(request.method, PAGE_METHODS))
        media_type = MEDIA_TYPES.get(file.suffix, "text/plain; charset=utf-8")
        return FileResponse(file, media_type=media_type, headers=self.headers)


page = Page(WEB)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    request = Request(scope, receive)
    path = raw_path(request)
    route = routes.match(path)
    response: Response
    if route is not None:
        response = await handle(route, request, get_dependencies)
    else:
        response = page.response(request, path) or _not_found(path)
    await response(scope, receive, send)


async def _lifespan(receive: Receive, send: Send) -> None:
    worker: QueueWorker | None = None
    polling: asyncio.Task[None] | None = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            worker = await _queue_worker()
            polling = asyncio.create_task(worker.poll()) if worker is not None else None
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if polling is not None and worker is not None:
                polling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await polling
                await worker.aclose()
            await close_dependencies()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _queue_worker() -> QueueWorker | None:
    """The poll loop of background responses, when the settings name a queue; a setting that is
    wrong is left for the first request (and /api/health) to report."""
    try:
        deps = await get_dependencies()
    except (ChatError, ValueError) as e:
        logging.getLogger(__name__).warning("background responses are not polled: %s", e)
        return None
    return QueueWorker(deps, deps.queue) if deps.queue is not None else None


def _not_found(path: str) -> Response:
    """A path no route has, in the error shape of the door it is under."""
    return error_response(RouteNotFound(), routes.error_body_at(path))
