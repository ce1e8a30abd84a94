"""The Azure Functions app: registers the HTTP routes of the route table (chat.web.routes) and the
queue trigger of background responses, nothing else.

One function per route, named as the route is, on its path. Handlers take and return
Starlette/FastAPI requests and responses through the HTTP streams extension
(azurefunctions-extensions-http-fastapi), so answers stream as they are generated. Every route
accepts every method; the handler answers unsupported ones with a JSON 405. Each is given the
worker's dependencies, built on first use. The routes take the app's auth level
(CHAT_AUTH_LEVEL), but the anonymous ones (health and the OpenAPI document).

`background_responses` takes the messages of the background responses' queue (CHAT_QUEUE_NAME, on
the connection CHAT_QUEUE: `CHAT_QUEUE__queueServiceUri` and the app's identity in Azure) and hands
each to the handler chat/local.py's poll loop calls too. A message its handler fails on is tried
again, up to host.json's maxDequeueCount; the handler fails the response on the last try.
"""

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from chat.dependencies import get_dependencies
from chat.settings import QUEUE_CONNECTION, auth_level_from_env, queue_name_from_env
from chat.web.openai.background import run_delivery
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


@app.queue_trigger(arg_name="message", queue_name=queue_name_from_env(), connection=QUEUE_CONNECTION)
async def background_responses(message: func.QueueMessage) -> None:
    await run_delivery(await get_dependencies(), message.get_body().decode(), message.dequeue_count or 1)
