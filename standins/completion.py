"""What the model stand-in answers: the directives in the last user message, the checks of a
request's messages and output limit, and the completion (text, calls or refusal, and usage)."""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from . import formats, tools
from .parts import validate_parts
from .protocol import invalid_request, text_of

REFUSAL = "I'm sorry, but I can't help with that request."

_ROLES = ("system", "developer", "user", "assistant", "tool")
_INSTRUCTION_ROLES = ("system", "developer")
_WORDS_PER_CHUNK = 2
_LONG_CHUNK_CHARS = 1000
_LONG_PATTERN = "Grüße, café é 中文 😀 naïve text; "
# The first Azure OpenAI API version that knows `max_completion_tokens`.
_MAX_COMPLETION_TOKENS_SINCE = "2024-09-01"
_MAX_OUTPUT_TOKENS = 16_384  # gpt-4o-mini's


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


def last_user_text(messages: list[dict[str, Any]]) -> str:
    index = _last_user(messages)
    return text_of(messages[index]["content"]) if index < len(messages) else ""


def count_prompt_tokens(messages: list[dict[str, Any]], declared: Any = None) -> int:
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


def call_tokens(name: str, arguments: str) -> int:
    return (len(name) + len(arguments)) // 4 + 1


def validate(body: Any, *, azure: bool) -> list[dict[str, Any]]:
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
        if isinstance(content, list):
            validate_parts(message["role"], content, where)
    if not isinstance(body.get("stream", False), bool):
        raise invalid_request("Invalid type for 'stream': expected a boolean.", "stream", "invalid_type")
    if not isinstance(body.get("stream_options") or {}, dict):
        raise invalid_request(
            "Invalid type for 'stream_options': expected an object.", "stream_options", "invalid_type"
        )
    tools.validate_tools(body)
    formats.validate(body)
    tools.check_sequence(messages)
    return messages


def output_limit(body: dict[str, Any], azure_api_version: str | None) -> int | None:
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
class Completion:
    id: str
    created: int
    model: str
    content: str | None
    finish_reason: str
    usage: dict[str, Any]
    tool_calls: tuple[tools.ToolCall, ...] = ()
    refusal: str | None = None  # the model refused: this is its refusal, and content is None


def newest_input(messages: list[dict[str, Any]]) -> str:
    """What the model answers: the tool outputs that end the request, else the last user message."""
    if messages[-1]["role"] == "tool":
        return "\n".join(tools.tool_outputs(messages))
    return last_user_text(messages)


# The user message that asks for a summary of a transcript (the app's compaction.py sends it).
SUMMARY_REQUEST = "Summarise the conversation below."


def summary_of(transcript: str) -> str:
    """A summary a later turn can check: every user line of the transcript (and every summary it
    holds) kept whole, the assistant's lines counted."""
    paragraphs = [p for p in transcript.split("\n\n") if p]
    kept = [p for p in paragraphs if p.startswith(("user: ", "summary of what came before: "))]
    answered = sum(1 for p in paragraphs if p.startswith("assistant"))
    return f"Summary ({answered} answers): " + " | ".join(kept)


def _answer_text(messages: list[dict[str, Any]], directives: Directives) -> str:
    outputs = tools.tool_outputs(messages)
    last = last_user_text(messages)
    if last.startswith(SUMMARY_REQUEST):
        return summary_of(last.removeprefix(SUMMARY_REQUEST))
    if outputs:
        text = "\n".join(f"Tool result: {output}" for output in outputs)
    else:
        prior = sum(1 for m in messages[: _last_user(messages)] if m["role"] not in _INSTRUCTION_ROLES)
        text = f"Echo #{prior}: {last_user_text(messages)}"
    if directives.long is not None:
        text = long_text(directives.long)
    if directives.finish_reason != "stop":
        text = text.split(" ", 1)[0]
    return text


def complete(
    body: dict[str, Any],
    messages: list[dict[str, Any]],
    directives: Directives,
    model: str,
    calls: list[tools.ToolCall],
    limit: int | None = None,
) -> Completion:
    if directives.refuse:
        # A model that refuses says so instead of answering, and calls nothing.
        calls = []
    content = None if calls or directives.refuse else formats.formatted(body, _answer_text(messages, directives))
    refusal = REFUSAL if directives.refuse else None
    finish_reason = "tool_calls" if calls else "stop" if refusal else directives.finish_reason
    if content is not None and limit is not None and len(content.split()) > limit:
        # A word is a token here: the answer stops after `limit` of them, as the real API stops.
        content = "".join(re.findall(r"\s*\S+", content)[:limit])
        finish_reason = "length"
    prompt_tokens = count_prompt_tokens(messages, body.get("tools"))
    if refusal is not None:
        completion_tokens = len(refusal.split())
    elif content is None:
        completion_tokens = sum(call_tokens(call.name, call.arguments) for call in calls)
    else:
        completion_tokens = len(content.split())
    thought = formats.reasoning_tokens(body)
    completion_tokens += thought
    return Completion(
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
                "reasoning_tokens": directives.reasoning + thought,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
    )


def pieces(content: str, directives: Directives) -> list[str]:
    """The content as streamed: ~1000 characters a chunk for long answers, else a few words."""
    if directives.long is not None:
        return [content[i : i + _LONG_CHUNK_CHARS] for i in range(0, len(content), _LONG_CHUNK_CHARS)]
    words = re.findall(r"\S+\s*|\s+", content)
    return ["".join(words[i : i + _WORDS_PER_CHUNK]) for i in range(0, len(words), _WORDS_PER_CHUNK)]
