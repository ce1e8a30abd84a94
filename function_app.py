"""The Azure Functions app: registers the HTTP routes, nothing else.

Handlers take and return Starlette/FastAPI requests and responses through the HTTP streams
extension (azurefunctions-extensions-http-fastapi), so answers stream as they are generated.
Every route accepts every method; the handler answers unsupported ones with a JSON 405.
"""

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from chat.settings import auth_level_from_env
from chat.web import http

app = func.FunctionApp(http_auth_level=func.AuthLevel[auth_level_from_env().upper()])
METHODS = list(http.ALL_METHODS)


@app.route(route=http.CHAT.path, methods=METHODS)
async def chat(req: Request) -> Response:
    return await http.handle(http.CHAT, req)


@app.route(route=http.CHAT_STREAM.path, methods=METHODS)
async def chat_stream(req: Request) -> Response:
    return await http.handle(http.CHAT_STREAM, req)


@app.route(route=http.CONVERSATIONS.path, methods=METHODS)
async def conversations(req: Request) -> Response:
    return await http.handle(http.CONVERSATIONS, req)


@app.route(route=http.MESSAGES.path, methods=METHODS)
async def conversation_messages(req: Request) -> Response:
    return await http.handle(http.MESSAGES, req)


@app.route(route=http.CONVERSATION.path, methods=METHODS)
async def conversation(req: Request) -> Response:
    return await http.handle(http.CONVERSATION, req)


@app.route(route=http.HEALTH.path, methods=METHODS, auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: Request) -> Response:
    return await http.handle(http.HEALTH, req)
