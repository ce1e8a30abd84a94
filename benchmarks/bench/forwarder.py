"""The benchmark's baseline: a stateless forwarder, `uvicorn benchmarks.bench.forwarder:app`.

It answers the app's two turn doors in their shapes, AI Chat Protocol `POST /api/chat` and
`/api/chat/stream` (JSON lines), and `POST /api/v1/responses` (JSON, or server-sent events with
`stream: true`), by making the app's own model call: the app's model adapter
(chat/upstream/model.py) on an openai SDK client built as chat/dependencies.py builds it (Azure
OpenAI, keyless, with the same settings from the same environment), asked with the system prompt
and the new message only. No history, no storage, no owner: what the app costs beyond it is what
keeping the conversation costs, and whatever makes the app's model call cheaper makes this one
cheaper too.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from azure.identity.aio import DefaultAzureCredential, get_bearer_token_provider
from openai import AsyncAzureOpenAI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from chat.engine.items import Usage, message
from chat.engine.model import Finished, ModelRequest, TextDelta
from chat.settings import AzureOpenAISettings, Settings
from chat.upstream.model import ModelClient

COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"


class Forwarder:
    def __init__(self, settings: Settings) -> None:
        model = settings.model
        if not isinstance(model, AzureOpenAISettings):
            raise ValueError("the forwarder calls Azure OpenAI, as the benchmark's app does")
        self.settings = settings
        self.credential = DefaultAzureCredential()
        client = AsyncAzureOpenAI(
            azure_endpoint=model.endpoint,
            api_version=model.api_version,
            azure_ad_token_provider=get_bearer_token_provider(self.credential, COGNITIVE_SERVICES_SCOPE),
            timeout=settings.model_timeout_seconds,
            max_retries=settings.model_max_retries,
        )
        self.model = ModelClient(client, settings.model_name)

    async def aclose(self) -> None:
        await self.model.close()
        await self.credential.close()

    def request(self, text: str) -> ModelRequest:
        return ModelRequest(system_prompt=self.settings.system_prompt, items=(message("user", text),))


_forwarder: Forwarder | None = None


def _get() -> Forwarder:
    global _forwarder
    if _forwarder is None:
        _forwarder = Forwarder(Settings.from_env())
    return _forwarder


def _usage(usage: Usage | None) -> dict[str, int] | None:
    return (
        None if usage is None else {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
    )


def _line(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


async def _chat(body: dict[str, Any], forwarder: Forwarder) -> Response:
    completion = await forwarder.model.complete(forwarder.request(body["messages"][-1]["content"]))
    return JSONResponse(
        {
            "message": {"role": "assistant", "content": completion.text},
            "sessionState": body.get("sessionState"),
            "context": {"finish_reason": completion.finish_reason, "usage": _usage(completion.usage)},
        }
    )


async def _chat_stream(body: dict[str, Any], forwarder: Forwarder) -> Response:
    events = await forwarder.model.stream(forwarder.request(body["messages"][-1]["content"]))

    async def lines() -> AsyncIterator[bytes]:
        yield _line({"delta": {"role": "assistant"}, "sessionState": body.get("sessionState")})
        async for event in events:
            if isinstance(event, TextDelta):
                yield _line({"delta": {"content": event.text}})
            elif isinstance(event, Finished):
                completion = event.completion
                context = {"finish_reason": completion.finish_reason, "usage": _usage(completion.usage)}
                yield _line({"delta": {}, "context": context})

    return StreamingResponse(lines(), media_type="application/jsonl", headers={"Cache-Control": "no-cache"})


def _response(body: dict[str, Any], status: str, text: str, usage: dict[str, int] | None) -> dict[str, Any]:
    message_object = {
        "id": "msg_" + secrets.token_hex(12),
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" else [],
    }
    return {
        "id": "resp_" + secrets.token_hex(12),
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "conversation": {"id": body["conversation"]} if body.get("conversation") else None,
        "model": body.get("model"),
        "output": [message_object] if status == "completed" else [],
        "usage": None
        if usage is None
        else {
            "input_tokens": usage["prompt_tokens"],
            "output_tokens": usage["completion_tokens"],
            "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"],
        },
    }


def _sse(sequence: int, kind: str, **fields: Any) -> bytes:
    data = {"type": kind, "sequence_number": sequence, **fields}
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _responses(body: dict[str, Any], forwarder: Forwarder) -> Response:
    text = body["input"] if isinstance(body["input"], str) else body["input"][-1]["content"]
    if not body.get("stream"):
        completion = await forwarder.model.complete(forwarder.request(text))
        return JSONResponse(_response(body, "completed", completion.text, _usage(completion.usage)))
    events = await forwarder.model.stream(forwarder.request(text))

    async def stream() -> AsyncIterator[bytes]:
        yield _sse(0, "response.created", response=_response(body, "in_progress", "", None))
        item = {"id": "msg_" + secrets.token_hex(12), "type": "message", "status": "in_progress", "role": "assistant"}
        yield _sse(1, "response.output_item.added", output_index=0, item={**item, "content": []})
        part = {"type": "output_text", "text": "", "annotations": []}
        yield _sse(2, "response.content_part.added", item_id=item["id"], output_index=0, content_index=0, part=part)
        sequence, pieces, usage = 3, [], None
        async for event in events:
            if isinstance(event, TextDelta):
                pieces.append(event.text)
                yield _sse(
                    sequence,
                    "response.output_text.delta",
                    item_id=item["id"],
                    output_index=0,
                    content_index=0,
                    delta=event.text,
                )
                sequence += 1
            elif isinstance(event, Finished):
                usage = _usage(event.completion.usage)
        answer = "".join(pieces)
        done = {**part, "text": answer}
        yield _sse(
            sequence, "response.output_text.done", item_id=item["id"], output_index=0, content_index=0, text=answer
        )
        yield _sse(sequence + 1, "response.content_part.done", item_id=item["id"], output_index=0, part=done)
        finished = {**item, "status": "completed", "content": [done]}
        yield _sse(sequence + 2, "response.output_item.done", output_index=0, item=finished)
        yield _sse(sequence + 3, "response.completed", response=_response(body, "completed", answer, usage))

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


ROUTES = {"/api/chat": _chat, "/api/chat/stream": _chat_stream, "/api/v1/responses": _responses}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _forwarder is not None:
                    await _forwarder.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    request = Request(scope, receive)
    handler = ROUTES.get(request.url.path)
    response: Response
    if handler is None or request.method != "POST":
        response = JSONResponse({"error": {"code": "not_found", "message": "Not found."}}, status_code=404)
    else:
        response = await handler(json.loads(await request.body()), _get())
    await response(scope, receive, send)
