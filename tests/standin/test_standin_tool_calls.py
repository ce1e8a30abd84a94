"""The model stand-in calls tools as the API does: directives and tool_choice make the calls, JSON
and streamed across chunks, driven by the real openai client; and how the directives are read."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

from standins import StandIns
from standins.tools import example_arguments, requested_calls
from tests.support.standin_clients import (
    HELLO,
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
    call_deltas,
    tool_calls_of,
)


def test_a_directive_makes_the_model_call_a_tool_json(standins: StandIns) -> None:
    async def scenario() -> Any:
        async with azure_openai(standins) as client:
            return await client.chat.completions.create(
                model=standins.deployment, messages=[{"role": "user", "content": ASK_WEATHER}], tools=[WEATHER]
            )

    completion = asyncio.run(scenario())

    [choice] = completion.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.role == "assistant" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.id.startswith("call_") and len(call.id) <= 40
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert call.function.arguments == PARIS
    assert completion.usage.completion_tokens == (len("get_weather") + len(PARIS)) // 4 + 1
    [request] = standins.requests()
    assert request["body"]["tools"] == [WEATHER]
    assert request["tool_calls"] == [{"id": call.id, "name": "get_weather", "arguments": PARIS}]


def test_a_tool_call_streams_its_arguments_across_chunks(standins: StandIns) -> None:
    async def scenario() -> list[Any]:
        async with azure_openai(standins) as client:
            stream = await client.chat.completions.create(
                model=standins.deployment,
                messages=[{"role": "user", "content": ASK_WEATHER}],
                tools=[WEATHER],
                stream=True,
                stream_options={"include_usage": True},
            )
            return await collect(stream)

    chunks = asyncio.run(scenario())

    prelude, first, *_, finish, usage = chunks
    assert prelude.choices == [] and prelude.model_extra["prompt_filter_results"]
    assert first.choices[0].delta.role == "assistant" and first.choices[0].delta.content is None
    head, *rest = call_deltas(chunks, 0)
    assert (head.id, head.type, head.function.name, head.function.arguments) == (
        standins.requests()[0]["tool_calls"][0]["id"],
        "function",
        "get_weather",
        "",
    )
    assert head is first.choices[0].delta.tool_calls[0]
    assert len(rest) > 2 and all(d.id is None and d.type is None and d.function.name is None for d in rest)
    [call] = tool_calls_of(chunks)
    assert json.loads(call["arguments"]) == {"city": "Paris", "unit": "celsius"}
    assert content_of(chunks) == ""
    assert finish.choices[0].finish_reason == "tool_calls" and finish.choices[0].delta.tool_calls is None
    assert usage.choices == [] and usage.usage.completion_tokens == (len("get_weather") + len(PARIS)) // 4 + 1


def test_the_sdk_stream_helper_accumulates_the_call(standins: StandIns) -> None:
    async def scenario() -> Any:
        async with (
            openai_client(standins) as client,
            client.chat.completions.stream(
                model="gpt-4o-mini", messages=[{"role": "user", "content": ASK_WEATHER}], tools=[WEATHER]
            ) as stream,
        ):
            return await stream.get_final_completion()

    completion = asyncio.run(scenario())

    [call] = completion.choices[0].message.tool_calls
    assert (call.function.name, call.function.arguments) == ("get_weather", PARIS)
    assert completion.choices[0].finish_reason == "tool_calls"


def test_two_directives_call_two_tools_at_once_json_and_streamed(standins: StandIns) -> None:
    messages = [{"role": "user", "content": ASK_BOTH}]

    async def scenario() -> tuple[Any, list[Any]]:
        async with openai_client(standins) as client:
            completion = await client.chat.completions.create(
                model="gpt-4o-mini", messages=messages, tools=[WEATHER, CLOCK]
            )
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=messages, tools=[WEATHER, CLOCK], stream=True
            )
            return completion, await collect(stream)

    completion, chunks = asyncio.run(scenario())

    calls = completion.choices[0].message.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris", "unit": "celsius"}),
        ("get_time", {"zone": "Europe/Paris"}),
    ]
    assert len({c.id for c in calls}) == 2
    streamed = tool_calls_of(chunks)
    assert [(c["name"], json.loads(c["arguments"])) for c in streamed] == [
        ("get_weather", {"city": "Paris", "unit": "celsius"}),
        ("get_time", {"zone": "Europe/Paris"}),
    ]
    assert [c["id"] for c in streamed] == [c["id"] for c in standins.requests()[1]["tool_calls"]]
    assert all(call_deltas(chunks, index)[0].id for index in (0, 1))
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_parallel_tool_calls_false_keeps_only_the_first_call(standins: StandIns) -> None:
    async def scenario() -> Any:
        async with openai_client(standins) as client:
            return await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": ASK_BOTH}],
                tools=[WEATHER, CLOCK],
                parallel_tool_calls=False,
            )

    completion = asyncio.run(scenario())

    assert [c.function.name for c in completion.choices[0].message.tool_calls] == ["get_weather"]
    assert standins.requests()[0]["body"]["parallel_tool_calls"] is False


@pytest.mark.parametrize(
    ("tool_choice", "name", "arguments"),
    [
        ("required", "get_weather", {"city": "", "unit": "celsius"}),
        ({"type": "function", "function": {"name": "get_time"}}, "get_time", {}),
    ],
)
def test_a_forced_tool_choice_calls_a_tool_without_a_directive(
    standins: StandIns, tool_choice: Any, name: str, arguments: dict[str, Any]
) -> None:
    async def scenario() -> Any:
        async with azure_openai(standins) as client:
            return await client.chat.completions.create(
                model=standins.deployment, messages=HELLO, tools=[WEATHER, CLOCK], tool_choice=tool_choice
            )

    completion = asyncio.run(scenario())

    [call] = completion.choices[0].message.tool_calls
    assert call.function.name == name
    assert json.loads(call.function.arguments) == arguments
    assert standins.requests()[0]["body"]["tool_choice"] == tool_choice


def test_a_named_tool_choice_overrides_a_directive_for_another_tool(standins: StandIns) -> None:
    async def scenario() -> Any:
        async with azure_openai(standins) as client:
            return await client.chat.completions.create(
                model=standins.deployment,
                messages=[{"role": "user", "content": ASK_BOTH}],
                tools=[WEATHER, CLOCK],
                tool_choice={"type": "function", "function": {"name": "get_time"}},
            )

    completion = asyncio.run(scenario())

    [call] = completion.choices[0].message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_time", {"zone": "Europe/Paris"})


@pytest.mark.parametrize("options", [{}, {"tools": [WEATHER], "tool_choice": "none"}])
def test_without_tools_or_with_tool_choice_none_a_directive_is_only_echoed(
    standins: StandIns, options: dict[str, Any]
) -> None:
    async def scenario() -> Any:
        async with azure_openai(standins) as client:
            return await client.chat.completions.create(
                model=standins.deployment, messages=[{"role": "user", "content": ASK_WEATHER}], **options
            )

    completion = asyncio.run(scenario())

    assert completion.choices[0].message.content == f"Echo #0: {ASK_WEATHER}"
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].finish_reason == "stop"
    assert standins.requests()[0]["tool_calls"] is None


def test_arguments_that_are_not_json_are_sent_as_written(standins: StandIns) -> None:
    async def scenario() -> Any:
        async with azure_openai(standins) as client:
            return await client.chat.completions.create(
                model=standins.deployment,
                messages=[{"role": "user", "content": 'Broken [[tool:get_weather {"city": "Par]]'}],
                tools=[WEATHER],
            )

    completion = asyncio.run(scenario())

    assert completion.choices[0].message.tool_calls[0].function.arguments == '{"city": "Par'


@pytest.mark.parametrize(
    ("text", "calls"),
    [
        ("[[tool:f]]", [("f", None)]),
        ('[[tool:f {"grid": [[1]]}]]', [("f", '{"grid": [[1]]}')]),
        ('[[tool:f {"note": "[[tool:g]]"}]]', [("f", '{"note": "[[tool:g]]"}')]),
        ('[[tool:f\n  {"a": 1}  ]] and [[tool:g]]', [("f", '{"a": 1}'), ("g", None)]),
        ('[[tool:f {"a": 1} trailing]]', [("f", '{"a": 1} trailing')]),
        ("[[tool:f!]] [[tool:f", []),
    ],
)
def test_tool_directives_are_read_up_to_the_end_of_their_json(text: str, calls: list[Any]) -> None:
    assert requested_calls(text) == calls


def test_arguments_from_a_schema_fill_the_required_properties() -> None:
    schema = {
        "type": "object",
        "properties": {
            "count": {"type": ["null", "integer"]},
            "label": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "nested": {"type": "object", "properties": {"flag": {"type": "boolean"}}, "required": ["flag"]},
            "size": {"type": "string", "enum": ["small", "large"], "default": "large"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "optional": {"type": "string"},
        },
        "required": ["count", "label", "nested", "size", "tags"],
    }

    assert json.loads(example_arguments(schema)) == {
        "count": 0,
        "label": "",
        "nested": {"flag": False},
        "size": "large",
        "tags": [],
    }


def test_a_cut_tool_call_stream_drops_mid_arguments(standins: StandIns) -> None:
    received: list[Any] = []

    async def scenario() -> None:
        async with azure_openai(standins, max_retries=0) as client:
            stream = await client.chat.completions.create(
                model=standins.deployment,
                messages=[{"role": "user", "content": f"{ASK_WEATHER} [[cut]]"}],
                tools=[WEATHER],
                stream=True,
            )
            async for chunk in stream:
                received.append(chunk)

    with pytest.raises(openai.APIConnectionError):
        asyncio.run(scenario())
    [call] = tool_calls_of(received)
    assert call["name"] == "get_weather" and PARIS.startswith(call["arguments"]) and call["arguments"] != PARIS
    assert all(chunk.choices[0].finish_reason is None for chunk in received if chunk.choices)
