"""The Azure Functions app: registers the HTTP routes, nothing else.

Handlers take and return Starlette/FastAPI requests and responses through the HTTP streams
extension (azurefunctions-extensions-http-fastapi), so answers stream as they are generated.
Every route accepts every method; the handler answers unsupported ones with a JSON 405. Each is
given the worker's dependencies, built on first use.
"""

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from chat.dependencies import get_dependencies
from chat.settings import auth_level_from_env
from chat.web import routes
from chat.web.toolkit import ALL_METHODS, handle

app = func.FunctionApp(http_auth_level=func.AuthLevel[auth_level_from_env().upper()])
METHODS = list(ALL_METHODS)


@app.route(route=routes.CHAT.path, methods=METHODS)
async def chat(req: Request) -> Response:
    return await handle(routes.CHAT, req, get_dependencies)


@app.route(route=routes.CHAT_STREAM.path, methods=METHODS)
async def chat_stream(req: Request) -> Response:
    return await handle(routes.CHAT_STREAM, req, get_dependencies)


@app.route(route=routes.CONVERSATIONS.path, methods=METHODS)
async def conversations(req: Request) -> Response:
    return await handle(routes.CONVERSATIONS, req, get_dependencies)


@app.route(route=routes.MESSAGES.path, methods=METHODS)
async def conversation_messages(req: Request) -> Response:
    return await handle(routes.MESSAGES, req, get_dependencies)


@app.route(route=routes.CONVERSATION.path, methods=METHODS)
async def conversation(req: Request) -> Response:
    return await handle(routes.CONVERSATION, req, get_dependencies)


@app.route(route=routes.HEALTH.path, methods=METHODS, auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: Request) -> Response:
    return await handle(routes.HEALTH, req, get_dependencies)


@app.route(route=routes.OPENAPI.path, methods=METHODS, auth_level=func.AuthLevel.ANONYMOUS)
async def openapi(req: Request) -> Response:
    return await handle(routes.OPENAPI, req, get_dependencies)


# The OpenAI-compatible door (chat.web.openai): OpenAI's Responses and Conversations APIs under /api/v1.


@app.route(route=routes.V1_RESPONSES.path, methods=METHODS)
async def v1_responses(req: Request) -> Response:
    return await handle(routes.V1_RESPONSES, req, get_dependencies)


@app.route(route=routes.V1_RESPONSE.path, methods=METHODS)
async def v1_response(req: Request) -> Response:
    return await handle(routes.V1_RESPONSE, req, get_dependencies)


@app.route(route=routes.V1_INPUT_ITEMS.path, methods=METHODS)
async def v1_response_input_items(req: Request) -> Response:
    return await handle(routes.V1_INPUT_ITEMS, req, get_dependencies)


@app.route(route=routes.V1_CONVERSATIONS.path, methods=METHODS)
async def v1_conversations(req: Request) -> Response:
    return await handle(routes.V1_CONVERSATIONS, req, get_dependencies)


@app.route(route=routes.V1_CONVERSATION.path, methods=METHODS)
async def v1_conversation(req: Request) -> Response:
    return await handle(routes.V1_CONVERSATION, req, get_dependencies)


@app.route(route=routes.V1_ITEMS.path, methods=METHODS)
async def v1_conversation_items(req: Request) -> Response:
    return await handle(routes.V1_ITEMS, req, get_dependencies)


@app.route(route=routes.V1_ITEM.path, methods=METHODS)
async def v1_conversation_item(req: Request) -> Response:
    return await handle(routes.V1_ITEM, req, get_dependencies)


@app.route(route=routes.V1_MODELS.path, methods=METHODS)
async def v1_models(req: Request) -> Response:
    return await handle(routes.V1_MODELS, req, get_dependencies)


@app.route(route=routes.V1_MODEL.path, methods=METHODS)
async def v1_model(req: Request) -> Response:
    return await handle(routes.V1_MODEL, req, get_dependencies)
