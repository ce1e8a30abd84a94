"""A response still streaming is found in progress, on every instance, with the official openai SDK.

The model stand-in's `[[hold:NAME]]` holds a stream after its first content chunk, so the test
reads the response while its answer is half written: the instance streaming it shows the text so
far, the others show it in progress with no output yet, and once the answer is stored every
instance shows it completed. A run that failed, or whose conversation was deleted, is not found,
and leaves no row behind.
"""

from __future__ import annotations

import uuid

import openai
import pytest
from azure.data.tables import TableClient
from openai import AsyncOpenAI

from chat.engine.history import response_partition
from chat.storage.keys import RUN_PREFIX
from tests.support.api import signed_in
from tests.support.openai_schema import OpenAIDescription

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


@pytest.fixture
def hold(standins):
    name = f"run-{uuid.uuid4().hex[:8]}"
    yield name
    standins.model.holds.release(name)  # a test that failed early does not hold its stream for long


def run_rows(azurite, instances, response_id: str) -> list[tuple[str, bool]]:
    """The in-progress rows of the response's partition, as Azurite holds them: (RowKey, closed)."""
    name = instances[0].env["CHAT_TABLE_PREFIX"] + "messages"
    with TableClient.from_connection_string(azurite.connection_string, table_name=name) as client:
        rows = client.query_entities("PartitionKey eq @pk", parameters={"pk": response_partition(response_id)})
        return [(row["RowKey"], bool(row.get("done"))) for row in rows if row["RowKey"].startswith(RUN_PREFIX)]


async def first_delta(stream) -> tuple[str, str]:
    """Read the stream up to its first text delta: the response's ID and the text so far."""
    response_id = ""
    async for event in stream:
        if event.type == "response.created":
            response_id = event.response.id
        if event.type == "response.output_text.delta":
            return response_id, event.delta
    raise AssertionError("the stream ended before any text")


async def test_a_streaming_response_is_in_progress_everywhere_then_completed_everywhere(
    sdks, standins, azurite, instances, hold
):
    here, there, elsewhere = sdks
    stream = await here.responses.create(model=standins.deployment, input=f"tell me [[hold:{hold}]]", stream=True)
    response_id, so_far = await first_delta(stream)

    raw = await here.responses.with_raw_response.retrieve(response_id)
    OpenAIDescription().validate("Response", raw.http_response.json())  # as OpenAI describes it
    seen_here = raw.parse()
    assert seen_here.status == "in_progress"
    [message] = seen_here.output
    assert message.type == "message" and message.status == "in_progress"
    assert message.content[0].text == so_far
    for sdk in (there, elsewhere):
        seen = await sdk.responses.retrieve(response_id)
        assert seen.status == "in_progress" and seen.output == [] and seen.id == response_id
        assert seen.model == seen_here.model and seen.created_at == seen_here.created_at
    assert run_rows(azurite, instances, response_id) == [(RUN_PREFIX + response_id, False)]

    standins.model.holds.release(hold)
    final = None
    async for event in stream:
        if event.type == "response.completed":
            final = event.response
    assert final is not None and final.output_text.startswith(so_far)
    for sdk in sdks:
        done = await sdk.responses.retrieve(response_id)
        assert done.status == "completed" and done.output_text == final.output_text
    # The turn's transaction closed the row: a mark that holds nothing of the response, and that
    # goes with the response.
    assert run_rows(azurite, instances, response_id) == [(RUN_PREFIX + response_id, True)]
    await elsewhere.responses.delete(response_id)
    assert run_rows(azurite, instances, response_id) == []


async def test_another_users_read_of_a_streaming_response_finds_nothing(sdks, standins, instances, hold):
    stream = await sdks[0].responses.create(model=standins.deployment, input=f"mine [[hold:{hold}]]", stream=True)
    response_id, _ = await first_delta(stream)
    for server in instances[:2]:  # the instance streaming it, and another
        async with AsyncOpenAI(
            base_url=f"{server.url}/api/v1", api_key="x", max_retries=0, default_headers=signed_in(uuid.uuid4().hex)
        ) as stranger:
            with pytest.raises(openai.NotFoundError) as caught:
                await stranger.responses.retrieve(response_id)
            assert caught.value.code == "response_not_found"
    standins.model.holds.release(hold)
    async for _ in stream:
        pass


async def test_a_response_whose_stream_failed_is_not_found_and_leaves_no_row(sdks, standins, azurite, instances):
    stream = await sdks[0].responses.create(model=standins.deployment, input="cut me [[cut]]", stream=True)
    events = [event async for event in stream]
    assert events[-1].type == "response.failed"
    response_id = events[0].response.id
    for sdk in sdks:
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.retrieve(response_id)
    assert run_rows(azurite, instances, response_id) == []


async def test_a_response_streaming_into_a_deleted_conversation_is_not_found_on_any_instance(
    sdks, standins, azurite, instances, hold
):
    here, there, _ = sdks
    conversation = await here.conversations.create()
    stream = await here.responses.create(
        model=standins.deployment, input=f"doomed [[hold:{hold}]]", conversation=conversation.id, stream=True
    )
    response_id, _ = await first_delta(stream)
    await there.conversations.delete(conversation.id)
    # Even the instance streaming it asks storage, which no longer has it.
    for sdk in sdks:
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.retrieve(response_id)
    standins.model.holds.release(hold)
    events = [event async for event in stream]
    assert events[-1].type == "response.failed"
    assert run_rows(azurite, instances, response_id) == []
