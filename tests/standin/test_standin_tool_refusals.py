"""The model stand-in refuses, with the API's own 400s, tool messages out of sequence and invalid
tools or tool_choice."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from standins import StandIns
from tests.support.standin_clients import (
    HELLO,
    azure_openai,
    openai_client,
)
from tests.support.standin_tools import (
    CLOCK,
    PARIS,
    WEATHER,
    assistant_turn,
    tool_turn,
)

_CALLED = assistant_turn([{"id": "call_a", "name": "get_weather", "arguments": PARIS}])
_CALLED_TWICE = assistant_turn(
    [
        {"id": "call_a", "name": "get_weather", "arguments": PARIS},
        {"id": "call_b", "name": "get_time", "arguments": "{}"},
    ]
)
_ORPHAN = "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'."
_UNANSWERED = (
    "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. "
    "The following tool_call_ids did not have response messages: "
)


@pytest.mark.parametrize(
    ("messages", "param", "code", "message"),
    [
        pytest.param([*HELLO, tool_turn("call_a", "18°C")], "messages.[1].role", None, _ORPHAN, id="orphan"),
        pytest.param(
            [
                *HELLO,
                _CALLED,
                tool_turn("call_a", "18°C"),
                {"role": "assistant", "content": "ok"},
                tool_turn("call_a", "x"),
            ],
            "messages.[4].role",
            None,
            _ORPHAN,
            id="tool-after-a-plain-assistant",
        ),
        pytest.param(
            [*HELLO, _CALLED, tool_turn("call_z", "18°C")],
            "messages.[2].tool_call_id",
            None,
            "Invalid parameter: 'tool_call_id' of 'call_z' not found in 'tool_calls' of previous message.",
            id="unknown-id",
        ),
        pytest.param(
            [*HELLO, _CALLED, tool_turn("call_a", "18°C"), tool_turn("call_a", "19°C")],
            "messages.[3].tool_call_id",
            None,
            "Invalid parameter: Duplicate value for 'tool_call_id' of 'call_a' in message[3]",
            id="answered-twice",
        ),
        pytest.param(
            [*HELLO, _CALLED_TWICE, tool_turn("call_a", "18°C"), {"role": "user", "content": "and?"}],
            "messages.[3].role",
            None,
            _UNANSWERED + "call_b",
            id="one-of-two-unanswered",
        ),
        pytest.param(
            [*HELLO, _CALLED_TWICE, {"role": "user", "content": "and?"}],
            "messages.[2].role",
            None,
            _UNANSWERED + "call_a, call_b",
            id="none-answered",
        ),
        pytest.param([*HELLO, _CALLED], "messages.[1].role", None, _UNANSWERED + "call_a", id="unanswered-at-the-end"),
        pytest.param(
            [*HELLO, _CALLED, {"role": "tool", "content": "18°C"}],
            "messages.[2].tool_call_id",
            None,
            "Missing parameter 'tool_call_id': messages with role 'tool' must have a 'tool_call_id'.",
            id="no-tool-call-id",
        ),
        pytest.param(
            [*HELLO, assistant_turn([{"id": "call_" + "x" * 36, "name": "get_weather", "arguments": "{}"}])],
            "messages[1].tool_calls[0].id",
            "string_above_max_length",
            "Invalid 'messages[1].tool_calls[0].id': string too long. Expected a string with maximum length 40, "
            "but got a string with length 41 instead.",
            id="id-too-long",
        ),
        pytest.param(
            [*HELLO, {"role": "assistant", "content": None, "tool_calls": []}],
            "messages[1].tool_calls",
            "empty_array",
            "Invalid 'messages[1].tool_calls': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            id="empty-tool-calls",
        ),
        pytest.param(
            [
                *HELLO,
                {"role": "assistant", "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "f"}}]},
            ],
            "messages[1].tool_calls[0].function.arguments",
            "missing_required_parameter",
            "Missing required parameter: 'messages[1].tool_calls[0].function.arguments'.",
            id="no-arguments",
        ),
    ],
)
def test_tool_messages_out_of_sequence_are_the_apis_400(
    standins: StandIns, messages: list[Any], param: str, code: str | None, message: str
) -> None:
    async def scenario() -> None:
        async with azure_openai(standins, max_retries=0) as client:
            await client.chat.completions.create(model=standins.deployment, messages=messages, tools=[WEATHER, CLOCK])

    with pytest.raises(openai.BadRequestError) as caught:
        asyncio.run(scenario())
    error = caught.value
    assert (error.param, error.code, error.type) == (param, code, "invalid_request_error")
    assert error.body["message"] == message
    [request] = standins.requests()
    assert (request["status"], request["tool_calls"]) == (400, None)


@pytest.mark.parametrize(
    ("options", "param", "code", "message"),
    [
        pytest.param(
            {"tool_choice": "auto"},
            "tool_choice",
            None,
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            id="choice-without-tools",
        ),
        pytest.param(
            {"parallel_tool_calls": True},
            "parallel_tool_calls",
            None,
            "Invalid value for 'parallel_tool_calls': "
            "'parallel_tool_calls' is only allowed when 'tools' are specified.",
            id="parallel-without-tools",
        ),
        pytest.param(
            {"tools": [WEATHER], "tool_choice": "always"},
            "tool_choice",
            "invalid_value",
            "Invalid value: 'always'. Supported values are: 'none', 'auto', and 'required'.",
            id="unknown-choice",
        ),
        pytest.param(
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_time"}}},
            "tool_choice",
            None,
            "Invalid value for 'tool_choice': no function named 'get_time' was specified in the 'tools' parameter.",
            id="choice-names-an-undeclared-function",
        ),
        pytest.param(
            {"tools": []},
            "tools",
            "empty_array",
            "Invalid 'tools': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            id="empty-tools",
        ),
        pytest.param(
            {"tools": [{"type": "function", "function": {"name": "get weather"}}]},
            "tools[0].function.name",
            "invalid_value",
            "Invalid 'tools[0].function.name': string does not match pattern. "
            "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
            id="bad-name",
        ),
        pytest.param(
            {"tools": [WEATHER, {"type": "function"}]},
            "tools[1].function",
            "missing_required_parameter",
            "Missing required parameter: 'tools[1].function'.",
            id="no-function",
        ),
        pytest.param(
            {"tools": [{"type": "retrieval", "function": {"name": "f"}}]},
            "tools[0].type",
            "invalid_value",
            "Invalid value: 'retrieval'. Supported values are: 'function'.",
            id="unknown-tool-type",
        ),
        pytest.param(
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]},
            "tools[0].function.parameters",
            "invalid_function_parameters",
            "Invalid schema for function 'f': "
            "schema must be a JSON Schema of 'type: \"object\"', got 'type: \"string\"'.",
            id="parameters-not-an-object-schema",
        ),
        pytest.param(
            {"tools": [WEATHER], "parallel_tool_calls": "yes"},
            "parallel_tool_calls",
            "invalid_type",
            "Invalid type for 'parallel_tool_calls': expected a boolean, but got a string instead.",
            id="parallel-not-a-boolean",
        ),
    ],
)
def test_invalid_tools_and_tool_choice_are_the_apis_400(
    standins: StandIns, options: dict[str, Any], param: str, code: str | None, message: str
) -> None:
    async def scenario() -> None:
        async with openai_client(standins, max_retries=0) as client:
            await client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, **options)

    with pytest.raises(openai.BadRequestError) as caught:
        asyncio.run(scenario())
    error = caught.value
    assert (error.param, error.code, error.type) == (param, code, "invalid_request_error")
    assert error.body["message"] == message
    assert standins.requests()[0]["status"] == 400
