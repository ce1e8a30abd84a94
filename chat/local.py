"""The same handlers under uvicorn, on the same paths as the Functions host: `uvicorn chat.local:app`.

Routing matches the raw, still percent-encoded path, as the Functions host does, so a
conversation ID holding `/` (sent as %2F) reaches the same route under both, and any decoded
character (a newline included) reaches the handler, which then says what is wrong with it.
Handlers are given the worker's dependencies, built on first use and closed at shut-down.

Outside /api it serves the chat page, the files of web/, at `/`, with the headers its
staticwebapp.config.json gives Static Web Apps (the Content-Security-Policy among them), so the page
runs here under the same rules as in Azure. Only the files that are there are served: any other
path answers the API's JSON 404, as before.
"""

from __future__ import annotations

import json
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.types import Receive, Scope, Send

from chat.dependencies import close_dependencies, get_dependencies
from chat.web import routes
from chat.web.errors import MethodNotAllowed, RouteNotFound
from chat.web.openai.handlers import error_body as openai_error_body
from chat.web.toolkit import error_response, handle, raw_path

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
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await close_dependencies()
            await send({"type": "lifespan.shutdown.complete"})
            return


def _not_found(path: str) -> Response:
    """A path no route has, in the error shape of the door it is under."""
    if path.lower().startswith("/api/v1/"):
        return error_response(RouteNotFound(), openai_error_body)
    return error_response(RouteNotFound())
