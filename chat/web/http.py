"""HTTP handlers: parse, call the service, serialise, map errors. Nothing else.

The same handlers serve the Functions host (through the HTTP streams extension, which hands
them Starlette requests) and uvicorn (chat.local). Each route accepts every method and answers a
method it does not support with a JSON 405, so both hosts behave alike.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from chat.dependencies import Dependencies, current_dependencies, get_dependencies
from chat.engine.errors import (
    ChatError,
    ConfigurationError,
    InvalidRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    RouteNotFound,
    UnsupportedMediaType,
)
from chat.engine.history import StoredItem
from chat.engine.items import FunctionCall, Message
from chat.engine.model import TextDelta
from chat.engine.service import Answer, Done, Failed, StreamedAnswer, TurnInput
from chat.web import cors
from chat.web.callers import owner_of
from chat.web.chat_protocol import parse_chat_request, parse_idempotency_key, validate_conversation_id

log = logging.getLogger(__name__)

JSON = "application/json"
JSON_LINES = "application/jsonl"
MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")

_ENCODED_SLASH = re.compile("%2f", re.IGNORECASE)

# A handler is given the request and the raw (still percent-encoded) parameters its route matched.
Handler = Callable[[Request, dict[str, str]], Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    name: str
    path: str  # under /api; `{id}` is a conversation ID, percent-encoded in the URL
    methods: dict[str, Handler]

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.split("/"))

    def match(self, path: str) -> dict[str, str] | None:
        """The route's parameters in a raw path, as the Functions host matches it: literal segments
        in any case, a parameter any one segment; None if the path is not this route's."""
        segments = _segments(path)
        if segments is None or len(segments) != len(self.segments):
            return None
        params = {}
        for template, segment in zip(self.segments, segments, strict=True):
            if template.startswith("{"):
                params[template[1:-1]] = segment
            elif template != segment.lower():
                return None
        return params


async def handle(route: Route, request: Request) -> Response:
    response = await _respond(route, request)
    deps = current_dependencies()
    if deps is not None:
        cors.add_headers(response, request.headers.get("origin"), deps.settings.allowed_origins)
    return response


async def _respond(route: Route, request: Request) -> Response:
    try:
        # The Functions host routes a path before the handler sees it, and tolerates what uvicorn's
        # match() does not (a trailing slash); matching again here gives both hosts one reading.
        params = route.match(raw_path(request))
        if params is None:
            raise RouteNotFound()
        if request.method == "OPTIONS":
            deps = await get_dependencies()
            return cors.preflight(request, route.methods, deps.settings.allowed_origins)
        handler = route.methods.get(request.method)
        if handler is None:
            raise MethodNotAllowed(request.method, tuple(route.methods))
        return await handler(request, params)
    except ChatError as e:
        return error_response(e)
    except Exception:
        log.exception("unexpected failure on %s %s", request.method, route.name)
        return error_response(ChatError("Something went wrong; try again."))


def error_response(error: ChatError) -> JSONResponse:
    if error.status >= 500:
        log.warning("%s %s: %s", error.status, error.code, error.message)
    return JSONResponse(
        {"error": {"code": error.code, "message": error.message}},
        status_code=error.status,
        headers=error.headers,
    )


# -- chat -------------------------------------------------------------------------------------


async def _chat(request: Request, params: dict[str, str]) -> Response:
    deps = await get_dependencies()
    owner, turn = await _turn_request(request, deps)
    answer = await deps.service.reply(owner, turn)
    return JSONResponse(
        {
            "message": {"role": "assistant", "content": answer.text},
            "sessionState": answer.conversation_id,
            "context": _context(answer.finish_reason, answer.usage),
        },
        headers=_replayed(answer),
    )


async def _chat_stream(request: Request, params: dict[str, str]) -> Response:
    deps = await get_dependencies()
    owner, turn = await _turn_request(request, deps)
    streamed = await deps.service.stream(owner, turn)

    async def lines() -> AsyncIterator[bytes]:
        yield _line({"delta": {"role": "assistant"}, "sessionState": streamed.conversation_id})
        async for event in streamed.events:
            if isinstance(event, TextDelta):
                yield _line({"delta": {"content": event.text}})
            elif isinstance(event, Done):
                yield _line({"delta": {}, "context": _context(event.finish_reason, event.usage)})
            elif isinstance(event, Failed):
                error = event.error
                log.warning("stream failed after it started: %s", error.code)
                yield _line({"error": {"code": error.code, "message": error.message}})

    return StreamingResponse(
        lines(),
        media_type=JSON_LINES,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **_replayed(streamed)},
    )


async def _turn_request(request: Request, deps: Dependencies) -> tuple[str, TurnInput]:
    settings = deps.settings
    owner = _owner(request, deps)
    turn = parse_chat_request(
        await _body(request),
        max_message_chars=settings.max_message_chars,
        idempotency_key=parse_idempotency_key(request.headers.get("idempotency-key")),
    )
    return owner, turn


def _owner(request: Request, deps: Dependencies) -> str:
    return owner_of(request.headers, trust_client_principal=deps.settings.trust_client_principal)


def _context(finish_reason: str | None, usage) -> dict[str, Any]:
    context: dict[str, Any] = {"finish_reason": finish_reason}
    if usage is not None:
        context["usage"] = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
    return context


def _replayed(answer: Answer | StreamedAnswer) -> dict[str, str]:
    return {"Idempotent-Replayed": "true"} if answer.replayed else {}


def _line(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


async def _body(request: Request) -> bytes:
    _require_json(request.headers.get("content-type"))
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The body is larger than {MAX_BODY_BYTES:,} bytes.", code="request_too_large")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"The body is larger than {MAX_BODY_BYTES:,} bytes.", code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _require_json(content_type: str | None) -> None:
    """A body is read only when sent as application/json (any case; a charset only if UTF-8).

    Other types are not merely tidiness: a browser sends text/plain and form bodies across origins
    with no CORS preflight, so accepting them would let any web page post turns past the CORS rules.
    """
    media_type, *parameters = (content_type or "").split(";")
    if media_type.strip().lower() != JSON:
        raise UnsupportedMediaType(f"Send the body as {JSON} (the Content-Type header).")
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            raise UnsupportedMediaType(f"A JSON body is UTF-8: send {JSON} with charset=utf-8 or no charset.")


# -- conversations ----------------------------------------------------------------------------


async def _conversations(request: Request, params: dict[str, str]) -> Response:
    deps = await get_dependencies()
    owner = _owner(request, deps)
    limit, cursor = _paging(request)
    page = await deps.service.conversations(owner, limit, cursor)
    return JSONResponse(
        {
            "conversations": [
                {
                    "id": c.id,
                    "title": c.title,
                    "created_at": c.created_at,
                    "updated_at": c.updated_at,
                    "message_count": c.message_count,
                }
                for c in page.items
            ],
            "next": page.next_cursor,
        }
    )


async def _messages(request: Request, params: dict[str, str]) -> Response:
    deps = await get_dependencies()
    owner = _owner(request, deps)
    conversation_id = conversation_id_of(params["id"])
    limit, cursor = _paging(request)
    page = await deps.service.items(owner, conversation_id, limit, cursor)
    return JSONResponse(
        {
            "sessionState": conversation_id,
            "messages": [_message(m) for m in page.items],
            "next": page.next_cursor,
        }
    )


async def _delete(request: Request, params: dict[str, str]) -> Response:
    deps = await get_dependencies()
    owner = _owner(request, deps)
    await deps.service.delete(owner, conversation_id_of(params["id"]))
    return Response(status_code=204)


def _message(stored: StoredItem) -> dict[str, Any]:
    """An item as the AI Chat Protocol shows messages: role and content; a function call and its
    output say their type besides."""
    item = stored.item
    document: dict[str, Any]
    if isinstance(item, Message):
        document = {"role": item.role, "content": item.text}
    elif isinstance(item, FunctionCall):
        document = {
            "role": "assistant",
            "type": "function_call",
            "call_id": item.call_id,
            "name": item.name,
            "arguments": item.arguments,
        }
    else:
        document = {"role": "tool", "type": "function_call_output", "call_id": item.call_id, "content": item.output}
    document["created_at"] = stored.created_at
    if stored.output:
        document["context"] = _context(stored.finish_reason, stored.usage)
    return document


def _paging(request: Request) -> tuple[int, str | None]:
    raw = request.query_params.get("limit")
    if raw is None:
        limit = DEFAULT_PAGE_SIZE
    elif raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_PAGE_SIZE:
        limit = int(raw)
    else:
        raise InvalidRequest(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}.", code="invalid_limit")
    return limit, request.query_params.get("cursor") or None


def conversation_id_of(segment: str) -> str:
    """The conversation ID of the `{id}` segment a route matched, percent-decoded once.

    The segment comes from the raw path, because an ID may contain `/` (sent as %2F), which a
    decoded path can no longer tell apart from a separator. The Functions host keeps %2F undecoded
    and forwards it to the worker re-encoded (%252F), so after decoding, a remaining `%2F` also
    stands for `/`; uvicorn is given the same rule, so both hosts read the same ID. An ID holding
    the text `%2F` itself therefore cannot be named in a URL (it can in `sessionState`).
    """
    try:
        value = unquote(segment, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InvalidRequest("The conversation ID is not UTF-8.", code="invalid_conversation_id") from None
    return validate_conversation_id(_ENCODED_SLASH.sub("/", value))


def raw_path(request: Request) -> str:
    """The path as the client sent it, still percent-encoded, without the query."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    return raw.decode("latin-1").split("?", 1)[0]


# -- health -----------------------------------------------------------------------------------


async def _health(request: Request, params: dict[str, str]) -> Response:
    """Liveness, configuration and reachability; names what is wrong, never a value."""
    try:
        deps = await get_dependencies()
    except ConfigurationError as e:
        body = {"status": "misconfigured", "error": {"code": e.code, "message": e.message}}
        return JSONResponse(body, status_code=503)
    storage, model = await asyncio.gather(_check(deps.service.ping()), _check(deps.service.check_model()))
    healthy = storage == "ok" and model == "ok"
    return JSONResponse(
        {
            "status": "ok" if healthy else "degraded",
            "model": {"kind": "azure_openai" if deps.settings.uses_azure_openai else "openai_compatible"},
            "checks": {"storage": storage, "model": model},
        },
        status_code=200 if healthy else 503,
    )


async def _check(probe: Awaitable[None]) -> str:
    try:
        await probe
    except ChatError as e:
        return e.code
    return "ok"


CHAT = Route("chat", "chat", {"POST": _chat})
CHAT_STREAM = Route("chat_stream", "chat/stream", {"POST": _chat_stream})
CONVERSATIONS = Route("conversations", "conversations", {"GET": _conversations})
MESSAGES = Route("conversation_messages", "conversations/{id}/messages", {"GET": _messages})
CONVERSATION = Route("conversation", "conversations/{id}", {"DELETE": _delete})
HEALTH = Route("health", "health", {"GET": _health, "HEAD": _health})  # anonymous: see function_app.py
ROUTES = (CHAT, CHAT_STREAM, CONVERSATIONS, MESSAGES, CONVERSATION, HEALTH)


def match(path: str) -> Route | None:
    """The route of a raw (still percent-encoded) path under /api."""
    return next((route for route in ROUTES if route.match(path) is not None), None)


def _segments(path: str) -> list[str] | None:
    """The segments of a raw path after `/api`, or None for a path outside /api or one with an
    empty segment (a doubled or trailing slash) or a `.` or `..` segment: a path names one thing,
    never the same thing as a path without that segment, nor a conversation whose ID is the rest."""
    root, _, rest = path.partition("/")
    prefix, _, rest = rest.partition("/")
    segments = rest.split("/")
    if root or prefix.lower() != "api" or any(s in ("", ".", "..") for s in segments):
        return None
    return segments
