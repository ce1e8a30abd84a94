"""GET /api/openapi.json: the route, apart from the document's builder (openapi.py), which imports the
openai SDK's response types and is imported only when the document is first asked for, so that a
worker that never serves it does not pay for it at start."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache

from starlette.requests import Request
from starlette.responses import Response

from chat.dependencies import Dependencies
from chat.engine.errors import ConfigurationError
from chat.web.toolkit import JSON, Params, Route


def route(routes: Callable[[], Sequence[Route]]) -> Route:
    """The document of `routes()` (this route among them), built at its first request and kept for
    the process. It needs no setting, so a misconfigured app serves it too."""

    @cache
    def body() -> bytes:
        from chat.web import openapi

        return openapi.document_bytes(routes())

    def answer() -> Response:
        return Response(body(), media_type=JSON)

    async def openapi_json(request: Request, params: Params, deps: Dependencies) -> Response:
        return answer()

    def misconfigured(error: ConfigurationError) -> Response:
        return answer()

    return Route("openapi", "openapi.json", {"GET": openapi_json}, misconfigured=misconfigured)
