"""The AI Chat Protocol turns: POST /api/chat (a JSON answer) and /api/chat/stream (JSON lines)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from chat.dependencies import Dependencies
from chat.engine.ids import parse_idempotency_key
from chat.engine.model import TextDelta
from chat.engine.service import Answer, Done, Failed, StreamedAnswer, TurnInput
from chat.web import toolkit
from chat.web.chat_protocol import parse_chat_request
from chat.web.toolkit import Params

log = logging.getLogger(__name__)

JSON_LINES = "application/jsonl"


async def reply(request: Request, params: Params, deps: Dependencies) -> Response:
    owner, turn = await _turn_request(request, deps)
    answer = await deps.service.reply(owner, turn)
    return JSONResponse(
        {
            "message": {"role": "assistant", "content": answer.text},
            "sessionState": answer.conversation_id,
            "context": context_document(answer.finish_reason, answer.usage),
        },
        headers=_replayed(answer),
    )


async def stream(request: Request, params: Params, deps: Dependencies) -> Response:
    owner, turn = await _turn_request(request, deps)
    streamed = await deps.service.stream(owner, turn)

    async def lines() -> AsyncIterator[bytes]:
        yield _line({"delta": {"role": "assistant"}, "sessionState": streamed.conversation_id})
        async for event in streamed.events:
            if isinstance(event, TextDelta):
                yield _line({"delta": {"content": event.text}})
            elif isinstance(event, Done):
                yield _line({"delta": {}, "context": context_document(event.finish_reason, event.usage)})
            elif isinstance(event, Failed):
                log.warning("stream failed after it started: %s", event.error.code)
                yield _line(toolkit.error_document(event.error))

    return StreamingResponse(
        lines(),
        media_type=JSON_LINES,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **_replayed(streamed)},
    )


async def _turn_request(request: Request, deps: Dependencies) -> tuple[str, TurnInput]:
    owner = toolkit.owner(request, deps)
    turn = parse_chat_request(
        await toolkit.read_body(request),
        max_message_chars=deps.settings.max_message_chars,
        idempotency_key=parse_idempotency_key(request.headers.get("idempotency-key")),
    )
    return owner, turn


def context_document(finish_reason: str | None, usage) -> dict[str, Any]:
    """The protocol's `context` of an answer: why it finished and the tokens it used."""
    context: dict[str, Any] = {"finish_reason": finish_reason}
    if usage is not None:
        context["usage"] = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
    return context


def _replayed(answer: Answer | StreamedAnswer) -> dict[str, str]:
    return {"Idempotent-Replayed": "true"} if answer.replayed else {}


def _line(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
