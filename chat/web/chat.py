"""The AI Chat Protocol turns: POST /api/chat (a JSON answer) and /api/chat/stream (JSON lines)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from chat.dependencies import Dependencies
from chat.engine.ids import parse_idempotency_key
from chat.engine.items import Item, Message
from chat.engine.model import TextDelta
from chat.engine.turns import Done, Failed, TurnInput
from chat.web import toolkit
from chat.web.answers import (
    AssistantMessage,
    ChatAnswer,
    ContentDelta,
    StreamEnd,
    StreamStart,
    StreamText,
    answer_context,
    error_body,
    json_response,
)
from chat.web.chat_protocol import parse_chat_request
from chat.web.toolkit import Params

log = logging.getLogger(__name__)

JSON_LINES = "application/jsonl"


async def reply(request: Request, params: Params, deps: Dependencies) -> Response:
    owner, turn = await _turn_request(request, deps)
    answer = await deps.engine.turns.reply(owner, turn)
    document = ChatAnswer(
        message=AssistantMessage(content=answer.text),
        session_state=answer.conversation_id,
        context=answer_context(answer.finish_reason, answer.usage, refusal=refused(answer.outputs)),
    )
    return json_response(document, headers=toolkit.replayed_header(answer.replayed))


async def stream(request: Request, params: Params, deps: Dependencies) -> Response:
    owner, turn = await _turn_request(request, deps)
    streamed = await deps.engine.turns.stream(owner, turn)

    async def lines() -> AsyncIterator[bytes]:
        yield _line(StreamStart(session_state=streamed.conversation_id))
        async for event in streamed.events:
            if isinstance(event, TextDelta):
                yield _line(StreamText(delta=ContentDelta(content=event.text)))
            elif isinstance(event, Done):
                context = answer_context(event.finish_reason, event.usage, refusal=refused(event.outputs))
                yield _line(StreamEnd(context=context))
            elif isinstance(event, Failed):
                log.warning("stream failed after it started: %s", event.error.code)
                yield _line(error_body(event.error))

    return StreamingResponse(
        lines(),
        media_type=JSON_LINES,
        headers={**toolkit.STREAM_HEADERS, **toolkit.replayed_header(streamed.replayed)},
    )


async def _turn_request(request: Request, deps: Dependencies) -> tuple[str, TurnInput]:
    owner = toolkit.owner(request, deps)
    turn = parse_chat_request(
        await toolkit.read_body(request),
        max_message_chars=deps.settings.max_message_chars,
        idempotency_key=parse_idempotency_key(request.headers.get("idempotency-key")),
    )
    return owner, turn


def refused(outputs: tuple[Item, ...]) -> bool:
    """Whether an answer is the model's refusal: the protocol's `content` carries its text, and the
    answer's `context` says so with `refusal: true`."""
    return any(isinstance(item, Message) and item.refusal for item in outputs)


def _line(line: BaseModel) -> bytes:
    """One line of the stream (answers.StreamLine): compact JSON, which never holds a raw newline."""
    return line.model_dump_json().encode("utf-8") + b"\n"
