"""The OpenAI door's server-sent events, and streams and answers read by the SDK."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from openai.types.responses import ResponseStreamEvent

from chat.engine import errors
from chat.engine.items import function_call
from chat.engine.model import Completion
from chat.web.openai.events import Done, Failed, response_events
from tests.fakes.openai_door import (
    CREATED,
    HEAD,
    MODEL,
    REFUSAL_PIECES,
    REFUSED,
    TEXT_PIECES,
    WEATHER,
    call_events,
    exact,
    failed_events,
    refusal_events,
    replay,
    sdk_client,
    serve,
    text_events,
)

wire = pytest.fixture(scope="module", name="wire")(serve)
client = pytest.fixture(name="client")(sdk_client)


# ---------------------------------------------------------------------------------------------------
# Streamed events


async def collect(chunks: AsyncIterator[bytes]) -> list[dict[str, Any]]:
    """The events of a stream, each checked for OpenAI's framing and read by the SDK's event type."""
    events = []
    async for chunk in chunks:
        match = re.fullmatch(rb"event: ([a-z_.]+)\ndata: (.+)\n\n", chunk, re.DOTALL)
        assert match, chunk
        data = json.loads(match.group(2))
        assert data["type"] == match.group(1).decode()
        exact(ResponseStreamEvent, data)
        events.append(data)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    return events


TEXT_STREAM = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]
CALL_STREAM = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
    "response.completed",
]


@pytest.mark.anyio
async def test_a_streamed_text_answer_is_framed_and_ordered_as_openai_sends_it():
    events = await collect(response_events(HEAD, replay(text_events())))
    assert [event["type"] for event in events] == TEXT_STREAM
    added, part = events[2], events[3]
    assert added["item"]["content"] == [] and added["item"]["status"] == "in_progress"
    assert part["part"] == {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    assert [event["delta"] for event in events[4:7]] == list(TEXT_PIECES)
    assert {(event["item_id"], event["output_index"], event["content_index"]) for event in events[3:9]} == {
        (added["item"]["id"], 0, 0)
    }
    assert events[7]["text"] == events[8]["part"]["text"] == "Hello, world"
    assert events[9]["item"]["status"] == "completed"
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["output"] == [events[9]["item"]]
    assert final["usage"]["total_tokens"] == 14 and final["completed_at"] == CREATED + 1


@pytest.mark.anyio
async def test_a_streamed_text_then_call_closes_each_item_before_the_next():
    events = await collect(response_events(HEAD, replay(call_events("Let me look."))))
    kinds = [event["type"] for event in events]
    assert kinds[:11] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
    ]
    call_added = events[8]
    assert (call_added["output_index"], call_added["item"]["arguments"], call_added["item"]["call_id"]) == (
        1,
        "",
        "call_weather",
    )
    assert events[-3]["arguments"] == '{"city": "Oslo"}'
    assert [item["type"] for item in events[-1]["response"]["output"]] == ["message", "function_call"]


REFUSAL_STREAM = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.refusal.delta",
    "response.refusal.delta",
    "response.refusal.delta",
    "response.refusal.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


@pytest.mark.anyio
async def test_a_streamed_refusal_is_a_refusal_part_with_its_own_deltas():
    events = await collect(response_events(HEAD, replay(refusal_events())))
    assert [event["type"] for event in events] == REFUSAL_STREAM
    added, part = events[2], events[3]
    assert added["item"]["content"] == [] and part["part"] == {"type": "refusal", "refusal": ""}
    assert [event["delta"] for event in events[4:7]] == list(REFUSAL_PIECES)
    assert all("logprobs" not in event for event in events[4:8])
    assert {(event["item_id"], event["output_index"], event["content_index"]) for event in events[3:9]} == {
        (added["item"]["id"], 0, 0)
    }
    assert events[7]["refusal"] == REFUSED and "text" not in events[7]
    assert events[8]["part"] == {"type": "refusal", "refusal": REFUSED}
    assert events[9]["item"]["content"] == [{"type": "refusal", "refusal": REFUSED}]
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["output"] == [events[9]["item"]]


@pytest.mark.anyio
async def test_a_refusal_cut_short_shows_the_refusal_so_far():
    *started, _, _ = refusal_events()
    failure = Failed(errors.ModelUnavailable("The model's answer was cut off.", code="model_stream_interrupted"))
    events = await collect(response_events(HEAD, replay([*started[:2], failure])))
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["output"][0]["content"] == [{"type": "refusal", "refusal": REFUSAL_PIECES[0]}]


@pytest.mark.anyio
async def test_a_stream_cut_short_ends_incomplete():
    events = await collect(response_events(HEAD, replay(text_events("length"))))
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-2]["item"]["status"] == events[-1]["response"]["output"][0]["status"] == "incomplete"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "events",
    [
        lambda: replay(failed_events()),
        lambda: replay(text_events()[:-2], raise_after=errors.ModelTimeout("The model did not answer in time.")),
    ],
)
async def test_a_failure_after_the_response_started_is_response_failed(events):
    seen = await collect(response_events(HEAD, events()))
    assert [event["type"] for event in seen][-2:] == ["response.output_text.delta", "response.failed"]
    failed = seen[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"
    assert failed["output"][0]["content"][0]["text"] == "Hello, world"
    assert failed["output"][0]["status"] == "incomplete"


@pytest.mark.anyio
async def test_a_stream_that_ends_without_an_outcome_fails():
    seen = await collect(response_events(HEAD, replay(text_events()[:-1])))
    assert seen[-1]["type"] == "response.failed" and seen[-1]["response"]["error"]["code"] == "server_error"


@pytest.mark.anyio
async def test_items_the_answer_has_but_the_stream_never_started_are_shown_whole():
    call = function_call("call_9", "weather", '{"city": "Bergen"}')
    *answer_events, _finished, done = text_events()
    completion = Completion((*done.completion.outputs, call), "tool_calls", done.completion.usage)
    events = await collect(response_events(HEAD, replay([*answer_events, Done(completion, CREATED + 1)])))
    assert [event["type"] for event in events][-6:] == [
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[-4]["delta"] == events[-3]["arguments"] == '{"city": "Bergen"}'
    assert [item["id"] for item in events[-1]["response"]["output"]][1] == call.id


# ---------------------------------------------------------------------------------------------------
# Streams and answers read by the SDK


def test_create_with_stream_reads_every_event(client):
    with client.responses.create(model=MODEL, input="hello", stream=True) as stream:
        events = list(stream)
    assert [event.type for event in events] == TEXT_STREAM
    assert [event.sequence_number for event in events] == list(range(len(TEXT_STREAM)))
    assert "".join(event.delta for event in events if event.type == "response.output_text.delta") == "Hello, world"
    assert events[-1].response.output_text == "Hello, world"


def test_the_stream_helper_assembles_the_final_text_response(client):
    with client.responses.stream(model=MODEL, input="hello") as stream:
        events = list(stream)
        final = stream.get_final_response()
    snapshots = [event.snapshot for event in events if event.type == "response.output_text.delta"]
    assert snapshots == ["Hel", "Hello, ", "Hello, world"]
    assert events[0].type == "response.created" and events[0].response.id == final.id
    assert (final.status, final.output_text, final.usage.total_tokens) == ("completed", "Hello, world", 14)


def test_the_stream_helper_assembles_a_function_call_from_its_deltas(client):
    with client.responses.stream(model=MODEL, input="call the tool", tools=[{**WEATHER, "strict": True}]) as stream:
        snapshots = [event.snapshot for event in stream if event.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    assert snapshots == ['{"ci', '{"city": "Os', '{"city": "Oslo"}']
    (call,) = final.output
    assert (call.type, call.call_id, call.name, call.arguments) == (
        "function_call",
        "call_weather",
        "weather",
        '{"city": "Oslo"}',
    )
    assert call.parsed_arguments == {"city": "Oslo"}


def test_the_stream_helper_and_a_plain_create_read_a_refusal(client):
    with client.responses.stream(model=MODEL, input="refuse this") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds == REFUSAL_STREAM
    for response in (final, client.responses.create(model=MODEL, input="refuse this")):
        assert response.output_text == ""
        assert [(part.type, part.refusal) for part in response.output[0].content] == [("refusal", REFUSED)]


def test_the_stream_helper_reads_text_then_a_call(client):
    with client.responses.stream(model=MODEL, input="weather in Oslo?", tools=[WEATHER]) as stream:
        final = stream.get_final_response()
    assert [item.type for item in final.output] == ["message", "function_call"]
    assert final.output_text == "Let me look." and final.output[1].arguments == '{"city": "Oslo"}'


@pytest.mark.anyio
async def test_the_async_client_s_stream_helper(wire):
    sdk = openai.AsyncOpenAI(base_url=wire.url, api_key="test-key", max_retries=0)
    async with sdk, sdk.responses.stream(model=MODEL, input="call it", tools=[WEATHER]) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert kinds == CALL_STREAM
    assert final.output[0].arguments == '{"city": "Oslo"}'


def test_a_plain_create_reads_the_response_object(client):
    response = client.responses.create(model=MODEL, input="hello")
    assert (response.object, response.status, response.model, response.output_text) == (
        "response",
        "completed",
        MODEL,
        "Hello, world",
    )
    assert (response.usage.input_tokens, response.usage.output_tokens) == (11, 3)


@pytest.mark.parametrize(
    ("text", "last", "check"),
    [
        ("long answer", "response.incomplete", lambda r: r.incomplete_details.reason == "max_output_tokens"),
        ("filtered answer", "response.incomplete", lambda r: r.incomplete_details.reason == "content_filter"),
        ("fail now", "response.failed", lambda r: r.error.code == "server_error"),
        ("raise now", "response.failed", lambda r: r.error.message == "The model did not answer in time."),
    ],
)
def test_a_stream_that_does_not_complete_says_how_it_ended(client, text, last, check):
    with client.responses.create(model=MODEL, input=text, stream=True) as stream:
        events = list(stream)
    assert events[-1].type == last and check(events[-1].response)
    assert events[-1].response.output[0].content[0].text == "Hello, world"
