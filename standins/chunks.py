"""The bodies the model stand-in sends: a JSON answer, or the chunks of a stream as server-sent
events, with Azure's annotations on the Azure route."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiohttp import web

from .completion import Completion
from .faults import content_filter_results

SYSTEM_FINGERPRINT = "fp_standin"
_ARGUMENT_CHUNK_CHARS = 4


class Body:
    """Builds the JSON of answers and chunks, with Azure's annotations on the Azure route."""

    def __init__(self, completion: Completion, *, azure: bool, include_usage: bool) -> None:
        self.completion = completion
        self.azure = azure
        self.include_usage = include_usage
        self.filtered = "violence" if completion.finish_reason == "content_filter" else None

    def _prompt_filter_results(self) -> list[dict[str, Any]]:
        return [{"prompt_index": 0, "content_filter_results": content_filter_results(prompt=True)}]

    def json(self) -> dict[str, Any]:
        c = self.completion
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": c.content, "refusal": c.refusal, "annotations": []},
            "logprobs": None,
            "finish_reason": c.finish_reason,
        }
        if c.tool_calls:
            choice["message"]["tool_calls"] = [call.wire() for call in c.tool_calls]
        body: dict[str, Any] = {
            "id": c.id,
            "object": "chat.completion",
            "created": c.created,
            "model": c.model,
            "choices": [choice],
            "usage": c.usage,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        if self.azure:
            choice["content_filter_results"] = content_filter_results(self.filtered)
            body["prompt_filter_results"] = self._prompt_filter_results()
        return body

    def _chunk(self, delta: dict[str, Any] | None, finish_reason: str | None = None) -> dict[str, Any]:
        c = self.completion
        chunk: dict[str, Any] = {
            "id": c.id,
            "object": "chat.completion.chunk",
            "created": c.created,
            "model": c.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [],
        }
        if delta is not None:
            choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            if self.azure:
                # Azure annotates content chunks, and the last one when its filter stopped the answer.
                if ("content" in delta or "refusal" in delta) and "role" not in delta:
                    choice["content_filter_results"] = content_filter_results()
                elif finish_reason == "content_filter":
                    choice["content_filter_results"] = content_filter_results(self.filtered)
                else:
                    choice["content_filter_results"] = {}
            chunk["choices"].append(choice)
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def opening(self) -> list[dict[str, Any]]:
        if not self.azure:
            return []
        # Azure opens every stream with the prompt's filter results and no choices.
        return [
            {
                "id": "",
                "object": "",
                "created": 0,
                "model": "",
                "choices": [],
                "prompt_filter_results": self._prompt_filter_results(),
            }
        ]

    def deltas(self, pieces: list[str]) -> list[dict[str, Any]]:
        """The answer's chunks: the role, then the text ``pieces`` (of the content, or of the
        refusal) or the tool calls."""
        if self.completion.tool_calls:
            return self._tool_call_deltas()
        if self.completion.refusal is not None:
            role = self._chunk({"role": "assistant", "content": None, "refusal": ""})
            return [role, *(self._chunk({"refusal": piece}) for piece in pieces)]
        role = self._chunk({"role": "assistant", "content": "", "refusal": None})
        return [role, *(self._chunk({"content": piece}) for piece in pieces)]

    def _tool_call_deltas(self) -> list[dict[str, Any]]:
        """Each call opens with its index, id, type and name, then its arguments a few characters a chunk;
        the first chunk also carries the role, as OpenAI and Azure stream them."""
        chunks = []
        for index, call in enumerate(self.completion.tool_calls):
            head = {"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
            delta: dict[str, Any] = {"tool_calls": [head]}
            if index == 0:
                delta = {"role": "assistant", "content": None, **delta, "refusal": None}
            chunks.append(self._chunk(delta))
            for start in range(0, len(call.arguments), _ARGUMENT_CHUNK_CHARS):
                piece = call.arguments[start : start + _ARGUMENT_CHUNK_CHARS]
                chunks.append(self._chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
        return chunks

    def tail(self) -> list[dict[str, Any]]:
        chunks = [self._chunk({}, self.completion.finish_reason)]
        if self.include_usage:
            usage = self._chunk(None)
            usage["usage"] = self.completion.usage
            chunks.append(usage)
        return chunks


def sse(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


def drop_connection(request: web.BaseRequest, response: web.StreamResponse | None = None) -> web.StreamResponse:
    """Close the socket after what was written so far, and return a response never completed.

    aiohttp's attempt to finish the response fails with a ``ConnectionError``, which it ignores, so
    the client sees the connection end mid-answer (or before any answer), as when a proxy drops it.
    """
    if request.transport is not None:
        request.transport.close()
    return response or web.Response()


def response_headers() -> dict[str, str]:
    request_id = str(uuid.uuid4())
    return {"x-request-id": request_id, "apim-request-id": request_id}


async def write(response: web.StreamResponse, chunks: list[dict[str, Any] | str], delay: float) -> None:
    for index, chunk in enumerate(chunks):
        if index and delay:
            await asyncio.sleep(delay)
        await response.write(sse(chunk))


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
