"""The model stand-in's answer after a tool call's round trip: the tool messages it is sent back,
echoed in order, and counted in the history."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from standins import StandIns
from tests.support.standin_clients import (
    azure_openai,
    collect,
    content_of,
    openai_client,
)
from tests.support.standin_tools import (
    ASK_BOTH,
    ASK_WEATHER,
    CLOCK,
    PARIS,
    WEATHER,
    assistant_turn,
    tool_turn,
)


def test_the_answer_after_a_tool_message_echoes_the_tool_output(standins: StandIns) -> None:
    question = [{"role": "user", "content": ASK_WEATHER}]

    async def scenario() -> tuple[Any, Any, list[Any]]:
        async with azure_openai(standins) as client:
            called = await client.chat.completions.create(model=standins.deployment, messages=question, tools=[WEATHER])
            [call] = called.choices[0].message.tool_calls
            history = [
                *question,
                called.choices[0].message.model_dump(exclude_none=True),
                tool_turn(call.id, "18°C and sunny"),
            ]
            answered = await client.chat.completions.create(
                model=standins.deployment, messages=history, tools=[WEATHER]
            )
            stream = await client.chat.completions.create(
                model=standins.deployment, messages=history, tools=[WEATHER], stream=True
            )
            return called, answered, await collect(stream)

    called, answered, chunks = asyncio.run(scenario())

    assert answered.choices[0].message.content == "Tool result: 18°C and sunny"
    assert answered.choices[0].message.tool_calls is None
    assert answered.choices[0].finish_reason == "stop"
    assert content_of(chunks) == "Tool result: 18°C and sunny"
    sent = standins.requests()[1]["body"]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == called.choices[0].message.tool_calls[0].id
    assert "content" not in sent[1] or sent[1]["content"] is None
    assert sent[2] == tool_turn(called.choices[0].message.tool_calls[0].id, "18°C and sunny")
    assert [r["status"] for r in standins.requests()] == [200, 200, 200]


def test_the_answer_after_parallel_calls_echoes_every_output_in_order(standins: StandIns) -> None:
    calls = [
        {"id": "call_one", "name": "get_weather", "arguments": PARIS},
        {"id": "call_two", "name": "get_time", "arguments": "{}"},
    ]
    messages = [
        {"role": "user", "content": ASK_BOTH},
        assistant_turn(calls),
        tool_turn("call_two", "12:00"),
        {"role": "tool", "tool_call_id": "call_one", "content": [{"type": "text", "text": "18°C"}]},
    ]

    async def scenario() -> Any:
        async with openai_client(standins) as client:
            return await client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER, CLOCK])

    completion = asyncio.run(scenario())

    assert completion.choices[0].message.content == "Tool result: 12:00\nTool result: 18°C"


def test_an_empty_tool_output_does_not_repeat_the_users_call(standins: StandIns) -> None:
    messages = [
        {"role": "user", "content": ASK_WEATHER},
        assistant_turn([{"id": "call_first", "name": "get_weather", "arguments": PARIS}]),
        tool_turn("call_first", ""),
    ]

    async def scenario() -> Any:
        async with azure_openai(standins) as client:
            return await client.chat.completions.create(model=standins.deployment, messages=messages, tools=[WEATHER])

    completion = asyncio.run(scenario())

    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].message.content == "Tool result: "


def test_a_tool_output_may_ask_for_the_next_call(standins: StandIns) -> None:
    call = {"id": "call_first", "name": "get_weather", "arguments": PARIS}
    messages = [
        {"role": "user", "content": ASK_WEATHER},
        assistant_turn([call]),
        tool_turn("call_first", "18°C; now [[tool:get_time {}]]"),
    ]

    async def scenario() -> Any:
        async with azure_openai(standins) as client:
            return await client.chat.completions.create(
                model=standins.deployment, messages=messages, tools=[WEATHER, CLOCK]
            )

    completion = asyncio.run(scenario())

    [next_call] = completion.choices[0].message.tool_calls
    assert (next_call.function.name, next_call.function.arguments) == ("get_time", "{}")


def test_the_echo_counts_tool_messages_in_the_history(standins: StandIns) -> None:
    call = {"id": "call_first", "name": "get_weather", "arguments": PARIS}
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": ASK_WEATHER},
        assistant_turn([call]),
        tool_turn("call_first", "18°C"),
        {"role": "assistant", "content": "Tool result: 18°C"},
        {"role": "user", "content": "Thanks"},
    ]

    async def scenario() -> Any:
        async with azure_openai(standins) as client:
            return await client.chat.completions.create(model=standins.deployment, messages=messages, tools=[WEATHER])

    completion = asyncio.run(scenario())

    assert completion.choices[0].message.content == "Echo #4: Thanks"
    expected = sum(len(m.get("content") or "") // 4 + 1 for m in messages)
    expected += (len("get_weather") + len(PARIS)) // 4 + len(json.dumps([WEATHER])) // 4
    assert completion.usage.prompt_tokens == expected
