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
from chat.engine.errors import ChatError, ConfigurationError, InvalidRequest, MethodNotAllowed, PayloadTooLarge
from chat.engine.service import Answer, Done, Failed, StreamedAnswer
from chat.model_client import TextDelta
from chat.web import cors
from chat.web.callers import owner_of
from chat.web.chat_protocol import TurnInput, parse_chat_request, parse_idempotency_key, validate_conversation_id

log = logging.getLogger(__name__)

JSON_LINES = "application/jsonl"
MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")

_ENCODED_SLASH = re.compile("%2f", re.IGNORECASE)

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    name: str
    path: str  # under /api; `{id}` is a conversation ID, percent-encoded in the URL
    methods: dict[str, Handler]

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.split("/"))


async def handle(route: Route, request: Request) -> Response:
    response = await _respond(route, request)
    deps = current_dependencies()
    if deps is not None:
        cors.add_headers(response, request.headers.get("origin"), deps.settings.allowed_origins)
    return response


async def _respond(route: Route, request: Request) -> Response:
    try:
        if request.method == "OPTIONS":
            deps = await get_dependencies()
            return cors.preflight(request, route.methods, deps.settings.allowed_origins)
        handler = route.methods.get(request.method)
        if handler is None:
            raise MethodNotAllowed(request.method, tuple(route.methods))
        return await handler(request)
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


async def _chat(request: Request) -> Response:
    deps = await get_dependencies()
    owner, turn = await _turn_request(request, deps)
    answer = await deps.service.reply(owner, turn)
    return JSONResponse(
        {
            "message": {"role": "assistant", "content": answer.content},
            "sessionState": answer.conversation_id,
            "context": _context(answer.finish_reason, answer.usage),
        },
        headers=_replayed(answer),
    )


async def _chat_stream(request: Request) -> Response:
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


# -- conversations ----------------------------------------------------------------------------


async def _conversations(request: Request) -> Response:
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


async def _messages(request: Request) -> Response:
    deps = await get_dependencies()
    owner = _owner(request, deps)
    conversation_id = conversation_id_of(request, suffix="messages")
    limit, cursor = _paging(request)
    page = await deps.service.messages(owner, conversation_id, limit, cursor)
    return JSONResponse(
        {
            "sessionState": conversation_id,
            "messages": [_message(m) for m in page.items],
            "next": page.next_cursor,
        }
    )


async def _delete(request: Request) -> Response:
    deps = await get_dependencies()
    owner = _owner(request, deps)
    await deps.service.delete(owner, conversation_id_of(request))
    return Response(status_code=204)


def _message(message) -> dict[str, Any]:
    document: dict[str, Any] = {"role": message.role, "content": message.content, "created_at": message.created_at}
    if message.role == "assistant":
        document["context"] = _context(message.finish_reason, message.usage)
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


def conversation_id_of(request: Request, *, suffix: str | None = None) -> str:
    """The conversation ID from the URL: `/api/conversations/{id}[/suffix]`, percent-decoded once.

    Read from the raw path, because an ID may contain `/` (sent as %2F), which a decoded path can
    no longer tell apart from a separator. The Functions host keeps %2F undecoded and forwards it
    to the worker re-encoded (%252F), so after decoding, a remaining `%2F` also stands for `/`;
    uvicorn is given the same rule, so both hosts read the same ID. An ID holding the text `%2F`
    itself therefore cannot be named in a URL (it can in `sessionState`).
    """
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    rest = raw_path.decode("latin-1").split("?", 1)[0].split("/")[3:]
    if suffix is not None and rest and rest[-1].lower() == suffix:
        rest = rest[:-1]
    try:
        value = "/".join(unquote(s, encoding="utf-8", errors="strict") for s in rest)
    except UnicodeDecodeError:
        raise InvalidRequest("The conversation ID is not UTF-8.", code="invalid_conversation_id") from None
    return validate_conversation_id(_ENCODED_SLASH.sub("/", value))


# -- health -----------------------------------------------------------------------------------


async def _health(request: Request) -> Response:
    """Liveness, configuration and reachability; names what is wrong, never a value."""
    try:
        deps = await get_dependencies()
    except ConfigurationError as e:
        body = {"status": "misconfigured", "error": {"code": e.code, "message": e.message}}
        return JSONResponse(body, status_code=503)
    storage, model = await asyncio.gather(_check(deps.store.ping()), _check(deps.model.check()))
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
    """The route of a raw (still percent-encoded) path under /api, matched as the Functions host
    does: literal segments in any case, `{id}` any non-empty segment."""
    segments = path.strip("/").split("/")
    if segments[0].lower() != "api":
        return None
    segments = segments[1:]
    for route in ROUTES:
        if len(route.segments) == len(segments) and all(
            t == s.lower() or (t == "{id}" and s) for t, s in zip(route.segments, segments, strict=True)
        ):
            return route
    return None
