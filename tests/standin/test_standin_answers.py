"""How the model stand-in's answers end and how long they are, through the real openai client:
finish-reason directives, output and context limits, long answers, and refusals."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from standins import StandIns
from standins.completion import REFUSAL, long_text
from tests.support.standin_clients import (
    HELLO,
    azure_openai,
    collect,
    content_of,
)


@pytest.mark.parametrize("reason", ["content_filter", "length"])
def test_finish_reason_directive_cuts_the_answer_short(standins: StandIns, reason: str) -> None:
    messages = [{"role": "user", "content": f"Tell me more [[finish:{reason}]]"}]

    async def scenario() -> tuple[Any, list[Any]]:
        async with azure_openai(standins) as client:
            completion = await client.chat.completions.create(model=standins.deployment, messages=messages)
            stream = await client.chat.completions.create(model=standins.deployment, messages=messages, stream=True)
            return completion, await collect(stream)

    completion, chunks = asyncio.run(scenario())

    assert completion.choices[0].message.content == "Echo"
    assert completion.choices[0].finish_reason == reason
    assert content_of(chunks) == "Echo"
    assert chunks[-1].choices[0].finish_reason == reason


@pytest.mark.parametrize("limit", ["max_completion_tokens", "max_tokens"])
def test_an_output_limit_stops_the_answer_at_that_many_tokens(standins: StandIns, limit: str) -> None:
    messages = [{"role": "user", "content": "one two three four five six"}]  # an answer of 8 tokens

    async def scenario() -> tuple[Any, list[Any], Any]:
        async with azure_openai(standins) as client:
            completion = await client.chat.completions.create(
                model=standins.deployment, messages=messages, **{limit: 3}
            )
            stream = await client.chat.completions.create(
                model=standins.deployment,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                **{limit: 3},
            )
            roomy = await client.chat.completions.create(model=standins.deployment, messages=messages, **{limit: 8})
            return completion, await collect(stream), roomy

    completion, chunks, roomy = asyncio.run(scenario())

    assert completion.choices[0].message.content == "Echo #0: one"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 3
    assert content_of(chunks) == "Echo #0: one"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert chunks[-1].usage.completion_tokens == 3
    assert roomy.choices[0].message.content == "Echo #0: one two three four five six"
    assert roomy.choices[0].finish_reason == "stop" and roomy.usage.completion_tokens == 8


def test_a_long_answer_is_cut_at_the_limit_too(standins: StandIns) -> None:
    messages = [{"role": "user", "content": "Write a lot [[long:4321]]"}]

    async def scenario() -> Any:
        async with azure_openai(standins) as client:
            return await client.chat.completions.create(
                model=standins.deployment, messages=messages, max_completion_tokens=10
            )

    completion = asyncio.run(scenario())

    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 10 == len(completion.choices[0].message.content.split())
    assert long_text(4321).startswith(completion.choices[0].message.content)


@pytest.mark.parametrize(
    ("value", "code"), [(0, "integer_below_min_value"), ("3", "invalid_type"), (16_385, "invalid_value")]
)
def test_a_bad_output_limit_is_a_bad_request(standins: StandIns, value: Any, code: str) -> None:
    async def scenario() -> None:
        async with azure_openai(standins, max_retries=0) as client:
            await client.chat.completions.create(
                model=standins.deployment, messages=HELLO, extra_body={"max_completion_tokens": value}
            )

    with pytest.raises(openai.BadRequestError) as caught:
        asyncio.run(scenario())
    assert caught.value.code == code and caught.value.param == "max_completion_tokens"


def test_api_versions_before_max_completion_tokens_refuse_it_as_azure_does(standins: StandIns) -> None:
    async def scenario() -> tuple[openai.BadRequestError, Any]:
        async with azure_openai(standins, api_version="2024-06-01", max_retries=0) as client:
            with pytest.raises(openai.BadRequestError) as caught:
                await client.chat.completions.create(model=standins.deployment, messages=HELLO, max_completion_tokens=1)
            legacy = await client.chat.completions.create(model=standins.deployment, messages=HELLO, max_tokens=1)
            return caught.value, legacy

    refused, legacy = asyncio.run(scenario())

    assert refused.body["message"] == "Unrecognized request argument supplied: max_completion_tokens"
    assert legacy.choices[0].message.content == "Echo" and legacy.choices[0].finish_reason == "length"


def test_context_limit_counts_messages(standins: StandIns) -> None:
    directive = "Go on [[context-limit:3]]"
    short = [{"role": "user", "content": directive}]
    long = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": "d"},
        {"role": "user", "content": directive},
    ]

    async def scenario() -> tuple[Any, openai.APIError]:
        async with azure_openai(standins, max_retries=0) as client:
            fine = await client.chat.completions.create(model=standins.deployment, messages=short)
            with pytest.raises(openai.BadRequestError) as caught:
                await client.chat.completions.create(model=standins.deployment, messages=long)
            return fine, caught.value

    fine, error = asyncio.run(scenario())

    assert fine.choices[0].message.content == f"Echo #0: {directive}"
    assert error.code == "context_length_exceeded"
    assert error.param == "messages"
    assert "maximum context length" in error.message


def test_long_answer_has_exactly_n_characters_json_and_streamed(standins: StandIns) -> None:
    messages = [{"role": "user", "content": "Write a lot [[long:4321]]"}]

    async def scenario() -> tuple[Any, list[Any]]:
        async with azure_openai(standins) as client:
            completion = await client.chat.completions.create(model=standins.deployment, messages=messages)
            stream = await client.chat.completions.create(model=standins.deployment, messages=messages, stream=True)
            return completion, await collect(stream)

    completion, chunks = asyncio.run(scenario())

    answer = completion.choices[0].message.content
    assert len(answer) == 4321
    assert {"é", "中", "😀"} <= set(answer)
    assert content_of(chunks) == answer
    assert sum(1 for chunk in chunks if chunk.choices and chunk.choices[0].delta.content) == 5


def test_refuse_answers_a_refusal_json_and_streamed(standins: StandIns) -> None:
    messages = [{"role": "user", "content": "Do something bad [[refuse]]"}]

    async def scenario() -> tuple[Any, list[Any]]:
        async with azure_openai(standins) as client:
            completion = await client.chat.completions.create(model=standins.deployment, messages=messages)
            stream = await client.chat.completions.create(
                model=standins.deployment, messages=messages, stream=True, stream_options={"include_usage": True}
            )
            return completion, await collect(stream)

    completion, chunks = asyncio.run(scenario())

    message = completion.choices[0].message
    assert (message.content, message.refusal) == (None, REFUSAL)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == len(REFUSAL.split())
    deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
    assert (deltas[0].role, deltas[0].content, deltas[0].refusal) == ("assistant", None, "")
    assert len([d for d in deltas if d.refusal]) > 1
    assert "".join(d.refusal or "" for d in deltas) == REFUSAL
    assert content_of(chunks) == ""
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_an_assistant_refusal_sent_back_needs_no_content_and_counts(standins: StandIns) -> None:
    history = [
        {"role": "user", "content": "Do something bad"},
        {"role": "assistant", "refusal": REFUSAL},
        {"role": "user", "content": "Then something good"},
    ]
    user = {"role": "user", "content": "x"}
    bad = [user, {"role": "assistant", "refusal": 7}, user]
    no_text = [user, {"role": "assistant", "content": None}, user]

    async def scenario() -> tuple[Any, list[openai.BadRequestError]]:
        async with azure_openai(standins, max_retries=0) as client:
            completion = await client.chat.completions.create(model=standins.deployment, messages=history)
            errors = []
            for messages in (bad, no_text):
                try:
                    await client.chat.completions.create(model=standins.deployment, messages=messages)
                except openai.BadRequestError as e:
                    errors.append(e)
            return completion, errors

    completion, errors = asyncio.run(scenario())

    assert completion.choices[0].message.content == "Echo #2: Then something good"
    texts = ["Do something bad", REFUSAL, "Then something good"]
    assert completion.usage.prompt_tokens == sum(len(text) // 4 + 1 for text in texts)
    assert [(e.param, e.code) for e in errors] == [
        ("messages[1].refusal", "invalid_type"),
        ("messages[1].content", "invalid_type"),
    ]
