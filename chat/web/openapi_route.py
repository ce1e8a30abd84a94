"""GET /api/openapi.json: the route's handler, apart from the document's builder (openapi.py), which
generates the schemas of every body and answer and is imported only when the document is first
asked for, so that a worker that never serves it does not pay for it at start."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from chat.dependencies import Dependencies
from chat.engine.errors import ConfigurationError
from chat.web.toolkit import JSON, Params

if TYPE_CHECKING:
    from chat.web.routing import Route


class Document:
    """The document of `routes()` (its own route among them), built at its first request and kept
    for the process. It needs no setting, so a misconfigured app serves it too."""

    def __init__(self, routes: Callable[[], Sequence[Route]]) -> None:
        self._routes = routes

    @cached_property
    def body(self) -> bytes:
        from chat.web import openapi

        return openapi.document_bytes(self._routes())

    def answer(self) -> Response:
        return Response(self.body, media_type=JSON)

    async def get(self, request: Request, params: Params, deps: Dependencies) -> Response:
        return self.answer()

    def misconfigured(self, error: ConfigurationError) -> Response:
        return self.answer()
