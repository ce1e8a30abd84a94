"""The model stand-in's fault directives, as the real openai client meets them: rate limits,
server errors, failing first, sleeping, cut connections, the content filter, slow chunks, and
answers held back until a test releases them."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from standins import StandIns
from tests.support.standin_clients import (
    azure_openai,
    collect,
    content_of,
)


async def azure_fault(standins: StandIns, content: str, **options: Any) -> openai.APIError:
    """The exception a single, unretried, non-streaming request raises."""
    async with azure_openai(standins, max_retries=0, **options) as client:
        with pytest.raises(openai.APIError) as caught:
            await client.chat.completions.create(
                model=standins.deployment, messages=[{"role": "user", "content": content}]
            )
    return caught.value


def test_rate_limit_is_retried_after_retry_after_ms_then_raised(standins: StandIns) -> None:
    async def scenario() -> openai.APIError:
        async with azure_openai(standins, max_retries=2) as client:
            with pytest.raises(openai.RateLimitError) as caught:
                await client.chat.completions.create(
                    model=standins.deployment, messages=[{"role": "user", "content": "Hi [[429]]"}]
                )
        return caught.value

    error = asyncio.run(scenario())

    assert error.status_code == 429
    assert error.code == "429"
    assert error.response.headers["retry-after"] == "7"
    assert error.response.headers["retry-after-ms"] == "10"
    requests = standins.requests()
    assert [r["status"] for r in requests] == [429, 429, 429]
    assert [r["headers"]["x-stainless-retry-count"] for r in requests] == ["0", "1", "2"]


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors(standins: StandIns, status: int) -> None:
    error = asyncio.run(azure_fault(standins, f"Hi [[{status}]]"))

    assert isinstance(error, openai.InternalServerError)
    assert error.status_code == status


def test_fail_first_fails_then_succeeds_on_retry(standins: StandIns) -> None:
    content = "Hi [[fail-first:1]]"

    async def scenario() -> Any:
        async with azure_openai(standins, max_retries=1) as client:
            return await client.chat.completions.create(
                model=standins.deployment, messages=[{"role": "user", "content": content}]
            )

    completion = asyncio.run(scenario())

    assert completion.choices[0].message.content == f"Echo #0: {content}"
    assert [(r["status"], r["fault"]) for r in standins.requests()] == [(500, "fail-first"), (200, None)]


def test_fail_first_counts_per_exact_content(standins: StandIns) -> None:
    first = asyncio.run(azure_fault(standins, "A [[fail-first:1]]"))
    other = asyncio.run(azure_fault(standins, "B [[fail-first:1]]"))

    assert isinstance(first, openai.InternalServerError) and isinstance(other, openai.InternalServerError)


def test_sleep_makes_a_client_timeout(standins: StandIns) -> None:
    error = asyncio.run(azure_fault(standins, "Hi [[sleep:2]]", timeout=0.3))

    assert isinstance(error, openai.APITimeoutError)


def test_sleep_delays_a_stream_before_its_first_byte(standins: StandIns) -> None:
    async def scenario() -> None:
        async with azure_openai(standins, max_retries=0, timeout=0.3) as client:
            await client.chat.completions.create(
                model=standins.deployment, messages=[{"role": "user", "content": "Hi [[sleep:2]]"}], stream=True
            )

    with pytest.raises(openai.APITimeoutError):
        asyncio.run(scenario())


def test_cut_stream_drops_after_two_content_chunks(standins: StandIns) -> None:
    received: list[Any] = []

    async def scenario() -> None:
        async with azure_openai(standins, max_retries=0) as client:
            stream = await client.chat.completions.create(
                model=standins.deployment,
                messages=[{"role": "user", "content": "one two three four five six [[cut]]"}],
                stream=True,
            )
            async for chunk in stream:
                received.append(chunk)

    with pytest.raises(openai.APIConnectionError):
        asyncio.run(scenario())
    assert content_of(received) == "Echo #0: one two "
    assert all(chunk.choices[0].finish_reason is None for chunk in received if chunk.choices)
    assert standins.requests()[0]["fault"] == "cut"


def test_cut_json_answer_drops_the_connection(standins: StandIns) -> None:
    error = asyncio.run(azure_fault(standins, "Hi [[cut]]"))

    assert type(error) is openai.APIConnectionError
    assert standins.requests()[0]["status"] is None


def test_prompt_filter_is_azures_content_filter_error(standins: StandIns) -> None:
    error = asyncio.run(azure_fault(standins, "Hi [[filter]]"))

    assert isinstance(error, openai.BadRequestError)
    assert error.code == "content_filter"
    assert error.param == "prompt"
    assert error.body["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert error.body["innererror"]["content_filter_result"]["violence"]["filtered"] is True


def test_chunk_delay_still_streams_the_whole_answer(standins: StandIns) -> None:
    async def scenario() -> list[Any]:
        async with azure_openai(standins) as client:
            stream = await client.chat.completions.create(
                model=standins.deployment, messages=[{"role": "user", "content": "Slow [[chunk-delay:5]]"}], stream=True
            )
            return await collect(stream)

    assert content_of(asyncio.run(scenario())) == "Echo #0: Slow [[chunk-delay:5]]"


async def until_held(standins: StandIns, name: str, count: int) -> None:
    """Wait, bounded, until `count` answers are held under `name`."""
    for _ in range(1000):
        if standins.model.holds.waiting(name) == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} answers were not held under {name}")


def test_hold_keeps_answers_back_until_released(standins: StandIns) -> None:
    """JSON answers wait before their first byte, streams after their first content chunk."""

    async def scenario() -> tuple[str, list[Any]]:
        async with azure_openai(standins) as client:
            asking = asyncio.ensure_future(
                client.chat.completions.create(
                    model=standins.deployment, messages=[{"role": "user", "content": "Wait [[hold:json]]"}]
                )
            )
            stream = await client.chat.completions.create(
                model=standins.deployment,
                messages=[{"role": "user", "content": "one two three [[hold:s]]"}],
                stream=True,
            )
            received = []
            async for chunk in stream:
                received.append(chunk)
                if chunk.choices and chunk.choices[0].delta.content:
                    break
            await until_held(standins, "json", 1)
            await until_held(standins, "s", 1)
            assert not asking.done()
            assert content_of(received) == "Echo #0: "
            standins.model.holds.release("s")
            received += await collect(stream)
            assert standins.model.holds.waiting("s") == 0 and not asking.done()
            standins.model.holds.release("json")
            completion = await asking
            return completion.choices[0].message.content, received

    answer, chunks = asyncio.run(scenario())

    assert answer == "Echo #0: Wait [[hold:json]]"
    assert content_of(chunks) == "Echo #0: one two three [[hold:s]]"
    assert standins.model.holds.waiting("json") == 0
