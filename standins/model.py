"""Chat completions stand-in: speaks Azure OpenAI's and OpenAI's chat completions wire protocol.

Routes:

``POST /openai/deployments/{deployment}/chat/completions?api-version=...``
    Azure OpenAI, as a resource with local auth disabled serves it: only
    ``Authorization: Bearer <token>`` with a token the identity stand-in issued for
    ``https://cognitiveservices.azure.com`` (401 otherwise); an ``api-key`` header is refused with
    403 ``AuthenticationTypeDisabled``; no ``api-version`` is 404; another deployment is 404
    ``DeploymentNotFound``. Answers carry Azure's ``prompt_filter_results`` and
    ``content_filter_results``; a stream opens with Azure's ``choices: []`` prompt-filter chunk.
``POST /v1/chat/completions``
    OpenAI-compatible, with ``Authorization: Bearer <api key>``.
``GET /_standin/requests``, ``POST /_standin/clear``
    the journal, for tests that drive a stand-in another process runs.

The answer is deterministic and shows what it was sent:
``Echo #{k}: {last user content}``, where k counts the messages before the last user message,
leaving out system and developer messages; or, when the request ends with tool messages,
``Tool result: {output}`` for each of them, one a line, oldest first. Usage: ``prompt_tokens`` is
the sum over messages of ``len(content) // 4 + 1``, plus ``(len(name) + len(arguments)) // 4`` for
each tool call in them, plus a quarter of the length of the ``tools`` JSON; ``completion_tokens``
the number of whitespace-separated words, or ``(len(name) + len(arguments)) // 4 + 1`` summed over
the calls the answer makes.

An assistant message sent back may carry the model's ``refusal`` (a string) beside or instead of
its ``content``: one with a refusal may leave ``content`` out or null, as one with ``tool_calls``
may. Its refusal counts in ``prompt_tokens`` as its content does.

Function tools (``tools``, ``tool_choice``, ``parallel_tool_calls``, assistant ``tool_calls``,
``tool`` messages) are checked and answered as the real API does: see ``tools.py`` for its 400s
and for which calls the model makes. An answer that calls tools has ``content: null``,
``message.tool_calls`` (ids ``call_...``, ``type: "function"``, ``function.arguments`` a JSON
string) and ``finish_reason: "tool_calls"``. Streamed, the first chunk carries the role and the
first call's index, id, type and name with empty arguments; each further call opens with its own
such chunk; the arguments follow a few characters a chunk. The journal records each answer's calls
as ``tool_calls`` (id, name, arguments), ``None`` when it made none.

An output limit, ``max_completion_tokens`` or the older ``max_tokens``, stops the answer after that
many words with ``finish_reason`` ``length``, as the real API stops at that many tokens; a limit over
16,384 (gpt-4o-mini's output limit) is a 400 ``invalid_value``. Like Azure,
the Azure route refuses ``max_completion_tokens`` on API versions before ``2024-09-01-preview``
(400 ``Unrecognized request argument supplied``).

Directives anywhere in the last user message drive faults and tool calls:

====================== ===============================================================
``[[429]]``            429, ``retry-after: 7``, ``retry-after-ms: 10``, Azure's rate limit body
``[[500]]``            500 ``InternalServerError``
``[[503]]``            503 ``ServiceUnavailable``
``[[fail-first:N]]``   the first N requests with this exact last user message get 500
``[[sleep:S]]``        wait S seconds (float) before answering, before the first byte
``[[cut]]``            stream: two chunks after the role's (two content pieces, or a call's head
                       and two argument pieces), then the connection drops; JSON: drops at once
``[[filter]]``         400 ``content_filter`` (Azure's prompt filter, ``ResponsibleAIPolicyViolation``)
``[[finish:R]]``       R is ``content_filter`` or ``length``: the first word only, finish_reason R
``[[context-limit:N]]`` 400 ``context_length_exceeded`` when the request has more than N messages
``[[long:N]]``         an answer of exactly N characters, non-ASCII included, streamed ~1000 a chunk
``[[chunk-delay:MS]]`` MS milliseconds between streamed chunks
``[[tool:NAME ARGS]]`` call the tool NAME with arguments ARGS, as written (JSON, or any text up to
                       ``]]`` for broken arguments); ``[[tool:NAME]]`` builds them from its schema.
                       Several: one answer with several calls, in order. Only when the request
                       declares ``tools`` and ``tool_choice`` is not ``"none"``. When the request
                       ends with tool messages these are read from their outputs instead, so a
                       tool's output can ask for the next call and the user's are not repeated
``[[cached:N]]``       usage says N of the prompt's tokens (at most all) were read from the prompt cache
``[[reasoning:N]]``    usage says N reasoning tokens were spent (besides the answer's)
``[[refuse]]``         the model refuses: ``content: null`` and ``refusal: "I'm sorry, ..."`` (REFUSAL)
                       in the message, ``finish_reason: "stop"``, no tool calls; streamed, the
                       role chunk has ``refusal: ""`` and ``content: null``, and the text follows
                       as ``delta.refusal`` pieces
``[[hold:NAME]]``      held until a test calls ``holds.release(NAME)`` (at most 60 s): JSON before
                       answering, a stream after its first content chunk; ``holds.waiting(NAME)``
                       counts the answers it holds
====================== ===============================================================
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import tools
from .identity import IdentityStandIn, Journal
from .protocol import Reject, invalid_request, text_of

AZURE_RESOURCE = "https://cognitiveservices.azure.com"
AZURE_MODEL = "gpt-4o-mini-2024-07-18"
SYSTEM_FINGERPRINT = "fp_standin"
REFUSAL = "I'm sorry, but I can't help with that request."

_ROLES = ("system", "developer", "user", "assistant", "tool")
_INSTRUCTION_ROLES = ("system", "developer")
_WORDS_PER_CHUNK = 2
_LONG_CHUNK_CHARS = 1000
_ARGUMENT_CHUNK_CHARS = 4
_LONG_PATTERN = "Grüße, café é 中文 😀 naïve text; "
_UNRECORDED_HEADERS = {"host", "content-length", "connection", "accept-encoding"}
# The first Azure OpenAI API version that knows `max_completion_tokens`.
_MAX_COMPLETION_TOKENS_SINCE = "2024-09-01"
_MAX_OUTPUT_TOKENS = 16_384  # gpt-4o-mini's
_HOLD_LIMIT_SECONDS = 60.0  # a hold a test never releases ends here, so nothing hangs for ever
_HOLD_POLL_SECONDS = 0.01


def _server_error(status: int, azure: bool) -> Reject:
    if status == 503:
        code, message = "ServiceUnavailable", "The engine is currently overloaded, please try again later."
    else:
        code = "InternalServerError"
        message = "The server had an error while processing your request. Sorry about that!"
    if azure:
        return Reject(status, {"error": {"code": code, "message": message}})
    return Reject(status, {"error": {"message": message, "type": "server_error", "param": None, "code": None}})


def _rate_limited(azure: bool, api_version: str | None) -> Reject:
    headers = {"retry-after": "7", "retry-after-ms": "10"}
    if azure:
        message = (
            f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version {api_version} "
            "have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 7 seconds. "
            "Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default "
            "rate limit."
        )
        return Reject(429, {"error": {"code": "429", "message": message}}, headers)
    error = {
        "message": "Rate limit reached for requests. Please try again in 7s.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    return Reject(429, {"error": error}, headers)


def _content_filter_results(filtered: str | None = None, *, prompt: bool = False) -> dict[str, Any]:
    """Azure's per-category annotations; ``filtered`` names the one category that tripped."""
    results: dict[str, Any] = {
        name: {"filtered": name == filtered, "severity": "medium" if name == filtered else "safe"}
        for name in ("hate", "self_harm", "sexual", "violence")
    }
    if prompt:
        results["jailbreak"] = {"filtered": False, "detected": False}
    else:
        results["protected_material_code"] = {"filtered": False, "detected": False}
        results["protected_material_text"] = {"filtered": False, "detected": False}
    return results


def _prompt_filtered() -> Reject:
    error = {
        "code": "content_filter",
        "message": (
            "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
            "Please modify your prompt and retry. To learn more about our content filtering policies please read "
            "our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
        ),
        "param": "prompt",
        "type": None,
        "status": 400,
        "innererror": {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_result": _content_filter_results("violence", prompt=True),
        },
    }
    return Reject(400, {"error": error})


def _context_length_exceeded(prompt_tokens: int) -> Reject:
    return invalid_request(
        "This model's maximum context length is 128000 tokens. However, your messages resulted in "
        f"{prompt_tokens} tokens. Please reduce the length of the messages.",
        param="messages",
        code="context_length_exceeded",
    )


@dataclass(frozen=True)
class Directives:
    """The fault directives found in one last user message."""

    status: int | None = None
    fail_first: int = 0
    sleep: float = 0.0
    cut: bool = False
    prompt_filter: bool = False
    finish_reason: str = "stop"
    context_limit: int | None = None
    long: int | None = None
    chunk_delay: float | None = None
    hold: str | None = None
    cached: int = 0
    reasoning: int = 0
    refuse: bool = False

    @classmethod
    def parse(cls, text: str) -> Directives:
        def number(name: str) -> float | None:
            match = re.search(rf"\[\[{name}:(\d+(?:\.\d+)?)\]\]", text)
            return float(match[1]) if match else None

        finish = re.search(r"\[\[finish:(content_filter|length)\]\]", text)
        hold = re.search(r"\[\[hold:([\w-]+)\]\]", text)
        fail_first, sleep, limit, long, delay_ms, cached, reasoning = (
            number(name)
            for name in ("fail-first", "sleep", "context-limit", "long", "chunk-delay", "cached", "reasoning")
        )
        return cls(
            status=next((code for code in (429, 500, 503) if f"[[{code}]]" in text), None),
            fail_first=int(fail_first or 0),
            sleep=sleep or 0.0,
            cut="[[cut]]" in text,
            prompt_filter="[[filter]]" in text,
            finish_reason=finish[1] if finish else "stop",
            context_limit=None if limit is None else int(limit),
            long=None if long is None else int(long),
            chunk_delay=None if delay_ms is None else delay_ms / 1000,
            hold=hold[1] if hold else None,
            cached=int(cached or 0),
            reasoning=int(reasoning or 0),
            refuse="[[refuse]]" in text,
        )


def long_text(length: int) -> str:
    """Exactly ``length`` characters (code points) of text with accents, CJK and an emoji."""
    repeats = length // len(_LONG_PATTERN) + 1
    return (_LONG_PATTERN * repeats)[:length]


def _last_user(messages: list[dict[str, Any]]) -> int:
    """The index of the last user message (``len(messages)`` when there is none)."""
    return max((i for i, m in enumerate(messages) if m["role"] == "user"), default=len(messages))


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    index = _last_user(messages)
    return text_of(messages[index]["content"]) if index < len(messages) else ""


def _prompt_tokens(messages: list[dict[str, Any]], declared: Any = None) -> int:
    """A quarter of the characters of each message's text, plus one; of the calls it made; of the tools' JSON."""
    tokens = 0
    for message in messages:
        refusal = message.get("refusal") if message["role"] == "assistant" else None
        tokens += (len(text_of(message.get("content"))) + len(refusal or "")) // 4 + 1
        if tools.has_tool_calls(message):
            tokens += sum(
                (len(call["function"]["name"]) + len(call["function"]["arguments"])) // 4
                for call in message["tool_calls"]
            )
    return tokens + (len(json.dumps(declared)) // 4 if declared else 0)


def _call_tokens(name: str, arguments: str) -> int:
    return (len(name) + len(arguments)) // 4 + 1


def _validate(body: Any, *, azure: bool) -> list[dict[str, Any]]:
    """The request's messages, or a 400 shaped like the real API's validation errors."""
    if not isinstance(body, dict):
        raise invalid_request(
            "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload."
        )
    if not azure and not body.get("model"):
        raise invalid_request("you must provide a model parameter", param="model")
    messages = body.get("messages")
    if messages is None:
        raise invalid_request("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise invalid_request(
            "Invalid 'messages': expected a non-empty array of message objects.", "messages", "invalid_value"
        )
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict) or "role" not in message:
            raise invalid_request(
                f"Missing required parameter: '{where}.role'.", f"{where}.role", "missing_required_parameter"
            )
        if message["role"] not in _ROLES:
            supported = ", ".join(f"'{role}'" for role in _ROLES)
            raise invalid_request(
                f"Invalid value: '{message['role']}'. Supported values are: {supported}.",
                f"{where}.role",
                "invalid_value",
            )
        tools.validate_message(message, index)
        content = message.get("content")
        refusal = message.get("refusal") if message["role"] == "assistant" else None
        if refusal is not None and not isinstance(refusal, str):
            raise invalid_request(
                f"Invalid type for '{where}.refusal': expected a string, but got {type(refusal).__name__} instead.",
                f"{where}.refusal",
                "invalid_type",
            )
        # An assistant message that calls tools, or refused, may leave its content out or null.
        if not isinstance(content, (str, list)) and not (
            content is None and (tools.has_tool_calls(message) or refusal is not None)
        ):
            raise invalid_request(
                f"Invalid type for '{where}.content': expected one of a string or array of objects.",
                f"{where}.content",
                "invalid_type",
            )
    if not isinstance(body.get("stream", False), bool):
        raise invalid_request("Invalid type for 'stream': expected a boolean.", "stream", "invalid_type")
    if not isinstance(body.get("stream_options") or {}, dict):
        raise invalid_request(
            "Invalid type for 'stream_options': expected an object.", "stream_options", "invalid_type"
        )
    tools.validate_tools(body)
    tools.check_sequence(messages)
    return messages


def _output_limit(body: dict[str, Any], azure_api_version: str | None) -> int | None:
    """The answer's limit in tokens, from ``max_completion_tokens`` or ``max_tokens``, or None."""
    if (
        "max_completion_tokens" in body
        and azure_api_version is not None
        and azure_api_version[:10] < _MAX_COMPLETION_TOKENS_SINCE
    ):
        raise invalid_request("Unrecognized request argument supplied: max_completion_tokens")
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise invalid_request(
                f"Invalid type for '{name}': expected an integer, but got a {type(value).__name__} instead.",
                name,
                "invalid_type",
            )
        if value < 1:
            raise invalid_request(
                f"Invalid '{name}': integer below minimum value. Expected a value >= 1, but got {value} instead.",
                name,
                "integer_below_min_value",
            )
        if value > _MAX_OUTPUT_TOKENS:
            raise invalid_request(
                f"{name} is too large: {value}. This model supports at most {_MAX_OUTPUT_TOKENS} completion "
                f"tokens, whereas you provided {value}.",
                name,
                "invalid_value",
            )
        return value
    return None


@dataclass(frozen=True)
class _Completion:
    id: str
    created: int
    model: str
    content: str | None
    finish_reason: str
    usage: dict[str, Any]
    tool_calls: tuple[tools.ToolCall, ...] = ()
    refusal: str | None = None  # the model refused: this is its refusal, and content is None


def _newest_input(messages: list[dict[str, Any]]) -> str:
    """What the model answers: the tool outputs that end the request, else the last user message."""
    if messages[-1]["role"] == "tool":
        return "\n".join(tools.tool_outputs(messages))
    return _last_user_text(messages)


def _answer_text(messages: list[dict[str, Any]], directives: Directives) -> str:
    outputs = tools.tool_outputs(messages)
    if outputs:
        text = "\n".join(f"Tool result: {output}" for output in outputs)
    else:
        prior = sum(1 for m in messages[: _last_user(messages)] if m["role"] not in _INSTRUCTION_ROLES)
        text = f"Echo #{prior}: {_last_user_text(messages)}"
    if directives.long is not None:
        text = long_text(directives.long)
    if directives.finish_reason != "stop":
        text = text.split(" ", 1)[0]
    return text


def _complete(
    body: dict[str, Any],
    messages: list[dict[str, Any]],
    directives: Directives,
    model: str,
    calls: list[tools.ToolCall],
    limit: int | None = None,
) -> _Completion:
    if directives.refuse:
        # A model that refuses says so instead of answering, and calls nothing.
        calls = []
    content = None if calls or directives.refuse else _answer_text(messages, directives)
    refusal = REFUSAL if directives.refuse else None
    finish_reason = "tool_calls" if calls else "stop" if refusal else directives.finish_reason
    if content is not None and limit is not None and len(content.split()) > limit:
        # A word is a token here: the answer stops after `limit` of them, as the real API stops.
        content = "".join(re.findall(r"\s*\S+", content)[:limit])
        finish_reason = "length"
    prompt_tokens = _prompt_tokens(messages, body.get("tools"))
    if refusal is not None:
        completion_tokens = len(refusal.split())
    elif content is None:
        completion_tokens = sum(_call_tokens(call.name, call.arguments) for call in calls)
    else:
        completion_tokens = len(content.split())
    return _Completion(
        id=f"chatcmpl-{secrets.token_hex(12)}",
        created=int(time.time()),
        model=model,
        content=content,
        finish_reason=finish_reason,
        tool_calls=tuple(calls),
        refusal=refusal,
        usage={
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            # As OpenAI and Azure report them: how much of the prompt came from the cache, and how
            # much of the completion was reasoning.
            "prompt_tokens_details": {"cached_tokens": min(directives.cached, prompt_tokens), "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": directives.reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
    )


def _pieces(content: str, directives: Directives) -> list[str]:
    """The content as streamed: ~1000 characters a chunk for long answers, else a few words."""
    if directives.long is not None:
        return [content[i : i + _LONG_CHUNK_CHARS] for i in range(0, len(content), _LONG_CHUNK_CHARS)]
    words = re.findall(r"\S+\s*|\s+", content)
    return ["".join(words[i : i + _WORDS_PER_CHUNK]) for i in range(0, len(words), _WORDS_PER_CHUNK)]


class _Body:
    """Builds the JSON of answers and chunks, with Azure's annotations on the Azure route."""

    def __init__(self, completion: _Completion, *, azure: bool, include_usage: bool) -> None:
        self.completion = completion
        self.azure = azure
        self.include_usage = include_usage
        self.filtered = "violence" if completion.finish_reason == "content_filter" else None

    def _prompt_filter_results(self) -> list[dict[str, Any]]:
        return [{"prompt_index": 0, "content_filter_results": _content_filter_results(prompt=True)}]

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
            choice["content_filter_results"] = _content_filter_results(self.filtered)
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
                    choice["content_filter_results"] = _content_filter_results()
                elif finish_reason == "content_filter":
                    choice["content_filter_results"] = _content_filter_results(self.filtered)
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


def _sse(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


def _drop_connection(request: web.BaseRequest, response: web.StreamResponse | None = None) -> web.StreamResponse:
    """Close the socket after what was written so far, and return a response never completed.

    aiohttp's attempt to finish the response fails with a ``ConnectionError``, which it ignores, so
    the client sees the connection end mid-answer (or before any answer), as when a proxy drops it.
    """
    if request.transport is not None:
        request.transport.close()
    return response or web.Response()


class Holds:
    """Answers held back by ``[[hold:NAME]]`` until a test releases NAME.

    Thread-safe: the stand-in's handlers wait on its own event loop while a test, in another
    thread, counts the waiting answers and releases them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: collections.Counter[str] = collections.Counter()
        self._released: set[str] = set()

    async def wait(self, name: str) -> None:
        with self._lock:
            self._waiting[name] += 1
        deadline = time.monotonic() + _HOLD_LIMIT_SECONDS
        try:
            while time.monotonic() < deadline:
                with self._lock:
                    if name in self._released:
                        return
                await asyncio.sleep(_HOLD_POLL_SECONDS)
        finally:
            with self._lock:
                self._waiting[name] -= 1

    def waiting(self, name: str) -> int:
        with self._lock:
            return self._waiting[name]

    def release(self, name: str) -> None:
        """Let every answer held under NAME go on, and any that asks to be held under it later."""
        with self._lock:
            self._released.add(name)

    def clear(self) -> None:
        with self._lock:
            self._released.clear()


class ModelStandIn:
    """Chat completions over loopback, with a journal of every request and fault directives."""

    def __init__(
        self,
        identity: IdentityStandIn,
        *,
        deployment: str = "chat",
        openai_api_key: str | None = None,
        chunk_delay: float = 0.0,
    ) -> None:
        self.identity = identity
        self.deployment = deployment
        self.openai_api_key = openai_api_key or f"sk-standin-{secrets.token_urlsafe(24)}"
        self.chunk_delay = chunk_delay
        self.journal = Journal()
        self.holds = Holds()
        self.models_requests = 0
        self._attempts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._azure)
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_get("/openai/models", self._azure_models)
        app.router.add_get("/v1/models", self._openai_models)
        app.router.add_get("/_standin/requests", self._journal_view)
        app.router.add_post("/_standin/clear", self._clear_view)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    def clear(self) -> None:
        """Forget every recorded request, every ``[[fail-first:N]]`` count and every released hold."""
        self.journal.clear()
        self.holds.clear()
        with self._lock:
            self._attempts.clear()

    async def _journal_view(self, request: web.Request) -> web.Response:
        return web.json_response(self.journal.entries())

    async def _clear_view(self, request: web.Request) -> web.Response:
        self.clear()
        self.identity.clear()
        return web.Response(status=204)

    async def _not_found(self, request: web.Request) -> web.Response:
        entry = await self._record(request, route=None)
        self.journal.update(entry, status=404)
        return web.json_response({"error": {"code": "404", "message": "Resource not found"}}, status=404)

    async def _azure_models(self, request: web.Request) -> web.Response:
        return self._models(request, azure=True)

    async def _openai_models(self, request: web.Request) -> web.Response:
        return self._models(request, azure=False)

    def _models(self, request: web.Request, *, azure: bool) -> web.Response:
        """The model list, which the app's health check reads; not journaled with the chat requests."""
        try:
            if azure and "api-version" not in request.query:
                raise Reject(404, {"error": {"code": "404", "message": "Resource not found"}})
            self._check_credentials(request, azure=azure)
        except Reject as reject:
            return web.json_response(reject.body, status=reject.status, headers=reject.headers)
        self.models_requests += 1
        model = {"id": self.deployment, "object": "model", "created": 0, "owned_by": "system"}
        return web.json_response({"object": "list", "data": [model]})

    async def _azure(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, azure=True)

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, azure=False)

    async def _record(self, request: web.Request, route: str | None) -> dict[str, Any]:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        auth, grant = self._auth(request)
        return self.journal.record(
            {
                "route": route,
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "headers": {
                    name.lower(): value
                    for name, value in request.headers.items()
                    if name.lower() not in _UNRECORDED_HEADERS
                },
                "body": body,
                "auth": auth,
                "grant": grant,
                "status": None,
                "fault": None,
                "tool_calls": None,
            }
        )

    def _auth(self, request: web.Request) -> tuple[str | None, dict[str, str] | None]:
        """Which credential the request carried, and what an identity token was issued for."""
        if "api-key" in request.headers:
            return "api-key", None
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credential:
            return None, None
        if secrets.compare_digest(credential.encode(), self.openai_api_key.encode()):
            return "openai-api-key", None
        grant = self.identity.grant(credential)
        if grant is None:
            return "unknown-bearer", None
        return "managed-identity", {"resource": grant.resource, "client_id": grant.client_id}

    async def _serve(self, request: web.Request, *, azure: bool) -> web.StreamResponse:
        entry = await self._record(request, route="azure" if azure else "openai")
        try:
            response = await self._respond(request, entry, azure=azure)
        except Reject as reject:
            self.journal.update(entry, status=reject.status)
            headers = {"x-request-id": str(uuid.uuid4()), **reject.headers}
            return web.json_response(reject.body, status=reject.status, headers=headers)
        if entry["fault"] != "cut":
            self.journal.update(entry, status=response.status)
        return response

    def _check_credentials(self, request: web.Request, *, azure: bool) -> None:
        auth, _ = self._auth(request)
        if azure:
            if auth == "api-key":
                message = "Key based authentication is disabled for this resource."
                raise Reject(403, {"error": {"code": "AuthenticationTypeDisabled", "message": message}})
            _, _, token = request.headers.get("Authorization", "").partition(" ")
            grant = self.identity.grant(token) if auth == "managed-identity" else None
            if grant is None or not grant.is_valid_for(AZURE_RESOURCE):
                message = (
                    "Unauthorized. Access token is missing, invalid, audience is incorrect "
                    f"({AZURE_RESOURCE}), or have expired."
                )
                raise Reject(401, {"statusCode": 401, "message": message})
        elif auth != "openai-api-key":
            error = {
                "message": "Incorrect API key provided. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
            raise Reject(401, {"error": error})

    async def _respond(self, request: web.Request, entry: dict[str, Any], *, azure: bool) -> web.StreamResponse:
        if azure and not request.query.get("api-version"):
            raise Reject(404, {"error": {"code": "404", "message": "Resource not found"}})
        self._check_credentials(request, azure=azure)
        if azure and request.match_info["deployment"] != self.deployment:
            message = (
                "The API deployment for this resource does not exist. If you created the deployment within "
                "the last 5 minutes, please wait a moment and try again."
            )
            raise Reject(404, {"error": {"code": "DeploymentNotFound", "message": message}})
        body = entry["body"]
        messages = _validate(body, azure=azure)
        limit = _output_limit(body, request.query.get("api-version") if azure else None)

        last_text = _last_user_text(messages)
        directives = Directives.parse(last_text)
        if directives.sleep:
            await asyncio.sleep(directives.sleep)
        self._raise_fault(entry, directives, body, messages, azure=azure, api_version=request.query.get("api-version"))

        stream = body.get("stream", False)
        if directives.cut and not stream:
            self.journal.update(entry, fault="cut")
            return _drop_connection(request)

        calls = tools.choose_calls(body, _newest_input(messages))
        if calls:
            self.journal.update(entry, tool_calls=[call.record() for call in calls])
        completion = _complete(body, messages, directives, AZURE_MODEL if azure else str(body["model"]), calls, limit)
        if directives.finish_reason != "stop":
            self.journal.update(entry, fault=f"finish:{directives.finish_reason}")
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and stream
        answer = _Body(completion, azure=azure, include_usage=include_usage)
        if not stream:
            if directives.hold is not None:
                await self.holds.wait(directives.hold)
            return web.json_response(answer.json(), headers=self._headers(), dumps=_dumps)
        return await self._stream(request, entry, answer, directives)

    def _raise_fault(
        self,
        entry: dict[str, Any],
        directives: Directives,
        body: dict[str, Any],
        messages: list[dict[str, Any]],
        *,
        azure: bool,
        api_version: str | None,
    ) -> None:
        fault: tuple[str, Reject] | None = None
        if directives.context_limit is not None and len(messages) > directives.context_limit:
            fault = "context-limit", _context_length_exceeded(_prompt_tokens(messages, body.get("tools")))
        elif directives.prompt_filter:
            fault = "filter", _prompt_filtered()
        elif directives.status == 429:
            fault = "429", _rate_limited(azure, api_version)
        elif directives.status is not None:
            fault = str(directives.status), _server_error(directives.status, azure)
        elif directives.fail_first:
            key = _last_user_text(messages)
            with self._lock:
                self._attempts[key] += 1
                attempt = self._attempts[key]
            if attempt <= directives.fail_first:
                fault = "fail-first", _server_error(500, azure)
        if fault is not None:
            self.journal.update(entry, fault=fault[0])
            raise fault[1]

    @staticmethod
    def _headers() -> dict[str, str]:
        request_id = str(uuid.uuid4())
        return {"x-request-id": request_id, "apim-request-id": request_id}

    async def _stream(
        self, request: web.Request, entry: dict[str, Any], answer: _Body, directives: Directives
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                **self._headers(),
            }
        )
        await response.prepare(request)
        delay = self.chunk_delay if directives.chunk_delay is None else directives.chunk_delay
        text = answer.completion.content if answer.completion.refusal is None else answer.completion.refusal
        deltas = answer.deltas(_pieces(text, directives) if text is not None else [])
        if directives.cut:
            self.journal.update(entry, status=response.status, fault="cut")
            # The role chunk and two more: two content pieces, or a call's head and two argument pieces.
            await self._write(response, [*answer.opening(), *deltas[:3]], delay)
            return _drop_connection(request, response)
        chunks: list[dict[str, Any] | str] = [*answer.opening(), *deltas, *answer.tail(), "[DONE]"]
        if directives.hold is not None:
            # After the role chunk and the first content piece (or the first call's head).
            held_at = len(answer.opening()) + (1 if answer.completion.tool_calls else 2)
            await self._write(response, chunks[:held_at], delay)
            await self.holds.wait(directives.hold)
            chunks = chunks[held_at:]
        await self._write(response, chunks, delay)
        await response.write_eof()
        return response

    @staticmethod
    async def _write(response: web.StreamResponse, chunks: list[dict[str, Any] | str], delay: float) -> None:
        for index, chunk in enumerate(chunks):
            if index and delay:
                await asyncio.sleep(delay)
            await response.write(_sse(chunk))


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
