"""The function tools the tests of the stand-ins declare, the directives that make the echo model
call them, and the messages of a tool call's round trip: the calls a stream's deltas add up to, the
assistant turn a client sends back, and the tool's answer."""

from __future__ import annotations

from typing import Any

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["city", "unit"],
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {"name": "get_time", "description": "The time in a zone.", "parameters": {"type": "object"}},
}
PARIS = '{"city": "Paris", "unit": "celsius"}'
ASK_WEATHER = f"Weather in Paris? [[tool:get_weather {PARIS}]]"
ASK_BOTH = f'Weather and time? [[tool:get_weather {PARIS}]] [[tool:get_time {{"zone": "Europe/Paris"}}]]'


def tool_calls_of(chunks: list[Any]) -> list[dict[str, Any]]:
    """The calls of a stream, reassembled from their deltas the way a client must."""
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            call = calls.setdefault(delta.index, {"id": None, "type": None, "name": None, "arguments": ""})
            call["id"] = delta.id or call["id"]
            call["type"] = delta.type or call["type"]
            if delta.function is not None:
                call["name"] = delta.function.name or call["name"]
                call["arguments"] += delta.function.arguments or ""
    return [calls[index] for index in sorted(calls)]


def call_deltas(chunks: list[Any], index: int) -> list[Any]:
    return [
        delta
        for chunk in chunks
        if chunk.choices
        for delta in chunk.choices[0].delta.tool_calls or []
        if delta.index == index
    ]


def assistant_turn(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The assistant message a client sends back after the model called ``calls``."""
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls
        ],
    }


def tool_turn(call_id: str, output: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": output}
