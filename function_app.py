"""The Azure Functions app: registers the HTTP routes of the route table (chat.web.routes), nothing else.

One function per route, named as the route is, on its path. Handlers take and return
Starlette/FastAPI requests and responses through the HTTP streams extension
(azurefunctions-extensions-http-fastapi), so answers stream as they are generated. Every route
accepts every method; the handler answers unsupported ones with a JSON 405. Each is given the
worker's dependencies, built on first use. The routes take the app's auth level
(CHAT_AUTH_LEVEL), but the anonymous ones (health and the OpenAPI document).
"""

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from chat.dependencies import get_dependencies
from chat.settings import auth_level_from_env
from chat.web.routes import ROUTES
from chat.web.routing import ALL_METHODS, Route, handle

app = func.FunctionApp(http_auth_level=func.AuthLevel[auth_level_from_env().upper()])


def _register(route: Route) -> None:
    """The route's function, on its path: the host calls it with the requests it routes there."""

    async def function(req: Request) -> Response:
        return await handle(route, req, get_dependencies)

    function.__name__ = function.__qualname__ = route.name
    auth_level = func.AuthLevel.ANONYMOUS if route.anonymous else None  # None: the app's
    app.route(route=route.path, methods=list(ALL_METHODS), auth_level=auth_level)(function)


for route in ROUTES:
    _register(route)
