"""Background responses (`background: true`) with the official openai SDK, on three instances of the
app sharing one Azurite: queued at once, run from the queue by whichever instance takes the message,
polled, streamed again from a sequence number, cancelled; every body and event as OpenAI describes it.
"""

from __future__ import annotations

import asyncio
import uuid

import openai
import pytest
from azure.storage.queue import TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from tests.support.openai_schema import OpenAIDescription

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
SCHEMA = OpenAIDescription()


@pytest.fixture
def hold(standins):
    name = f"bg-{uuid.uuid4().hex[:8]}"
    yield name
    standins.model.holds.release(name)


async def retrieved(sdk, response_id: str) -> dict:
    raw = await sdk.responses.with_raw_response.retrieve(response_id)
    body = raw.http_response.json()
    SCHEMA.validate("Response", body)
    return body


async def until(sdk, response_id: str, *statuses: str) -> dict:
    for _ in range(200):
        body = await retrieved(sdk, response_id)
        if body["status"] in statuses:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"{response_id} never reached {statuses}: {body['status']}")


async def test_a_background_response_is_queued_then_completes_on_its_own(sdks, standins):
    here, there, elsewhere = sdks
    raw = await here.responses.with_raw_response.create(model=standins.deployment, input="hello", background=True)
    queued = raw.http_response.json()
    SCHEMA.validate("Response", queued)
    assert queued["status"] == "queued" and queued["background"] is True and queued["output"] == []
    done = await until(there, queued["id"], "completed")
    assert done["output"][0]["content"][0]["text"].startswith("Echo") and done["background"] is True
    assert (await retrieved(elsewhere, queued["id"])) == done
    replayed = [event async for event in await here.responses.retrieve(queued["id"], stream=True)]
    assert replayed[0].sequence_number == 0 and replayed[-1].type == "response.completed"
    items = await elsewhere.responses.input_items.list(queued["id"])
    assert [item.content[0].text for item in items.data] == ["hello"]
    await here.responses.delete(queued["id"])
    with pytest.raises(openai.NotFoundError):
        await there.responses.retrieve(queued["id"])
    with pytest.raises(openai.NotFoundError):
        await there.responses.retrieve(queued["id"], stream=True)


async def test_background_with_store_false_is_refused_by_name(sdks, standins):
    with pytest.raises(openai.BadRequestError) as caught:
        await sdks[0].responses.create(model=standins.deployment, input="hi", background=True, store=False)
    SCHEMA.validate("ErrorResponse", caught.value.response.json())
    assert caught.value.body["param"] == "background"
    assert (await sdks[0].conversations.create()).id  # the door still serves
    with pytest.raises(openai.BadRequestError) as bad:
        await sdks[0].responses.retrieve("resp_" + "0" * 48, stream=True, starting_after=-1)  # type: ignore[call-overload]
    assert bad.value.body["param"] == "starting_after"


async def test_an_idempotency_key_with_background_is_refused_and_queues_nothing(sdks, standins):
    sdk = sdks[0]
    conversation = await sdk.conversations.create()
    marker = f"idem-bg-{uuid.uuid4().hex[:8]}"
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.responses.create(
            model=standins.deployment,
            input=marker,
            conversation=conversation.id,
            background=True,
            extra_headers={"Idempotency-Key": marker},
        )
    SCHEMA.validate("ErrorResponse", caught.value.response.json())
    assert "Idempotency-Key" in caught.value.body["message"]
    await asyncio.sleep(1)  # a queued job would have run by now: waiting, not a timing assert
    assert (await sdk.conversations.items.list(conversation.id)).data == []
    assert not [e for e in standins.requests() if marker in str(e["body"]["messages"])]


async def test_a_running_response_is_in_progress_everywhere_with_its_text_so_far(sdks, standins, hold):
    here, there, _ = sdks
    queued = await here.responses.create(model=standins.deployment, input=f"tell [[hold:{hold}]]", background=True)
    running = await until(there, queued.id, "in_progress")
    for _ in range(100):
        if running["output"] and running["output"][0]["content"][0]["text"]:
            break
        await asyncio.sleep(0.1)
        running = await retrieved(there, queued.id)
    assert running["status"] == "in_progress" and running["output"][0]["content"][0]["text"].startswith("Echo")
    standins.model.holds.release(hold)
    assert (await until(here, queued.id, "completed"))["status"] == "completed"


async def test_a_background_stream_resumes_after_a_sequence_number_on_another_instance(sdks, standins):
    here, there, _ = sdks
    stream = await here.responses.create(model=standins.deployment, input="stream me", background=True, stream=True)
    first = []
    async for event in stream:
        SCHEMA.validate_event(event.model_dump(mode="json", exclude_unset=True))
        first.append(event)
        if len(first) == 3:
            break
    await stream.close()
    response_id = first[0].response.id
    resumed = await there.responses.retrieve(response_id, stream=True, starting_after=first[-1].sequence_number)
    rest = [event async for event in resumed]
    for event in rest:
        SCHEMA.validate_event(event.model_dump(mode="json", exclude_unset=True))
    numbers = [event.sequence_number for event in first + rest]
    assert numbers == list(range(len(numbers)))
    assert rest[-1].type == "response.completed" and rest[-1].response.output_text.startswith("Echo")


async def test_cancel_stops_a_background_response_on_any_instance(sdks, standins, hold):
    here, there, elsewhere = sdks
    queued = await here.responses.create(model=standins.deployment, input=f"slow [[hold:{hold}]]", background=True)
    await until(there, queued.id, "in_progress")
    raw = await elsewhere.responses.with_raw_response.cancel(queued.id)
    cancelled = raw.http_response.json()
    SCHEMA.validate("Response", cancelled)
    assert cancelled["status"] == "cancelled"
    await asyncio.sleep(2.5)  # the run reads its row every second while the model is quiet: it stops
    standins.model.holds.release(hold)
    await asyncio.sleep(0.5)
    assert (await retrieved(here, queued.id))["status"] == "cancelled"
    again = await there.responses.cancel(queued.id)
    assert again.status == "cancelled"


async def test_cancel_of_a_finished_unknown_or_foreground_response(sdks, standins):
    here, there, _ = sdks
    queued = await here.responses.create(model=standins.deployment, input="quick", background=True)
    done = await until(there, queued.id, "completed")
    assert (await here.responses.cancel(queued.id)).model_dump(mode="json", exclude_unset=True)["status"] == "completed"
    assert done["status"] == "completed"
    foreground = await here.responses.create(model=standins.deployment, input="now")
    with pytest.raises(openai.BadRequestError) as caught:
        await there.responses.cancel(foreground.id)
    SCHEMA.validate("ErrorResponse", caught.value.response.json())
    with pytest.raises(openai.NotFoundError):
        await there.responses.cancel("resp_" + "0" * 48)
    with pytest.raises(openai.BadRequestError) as streamed:
        await there.responses.retrieve(foreground.id, stream=True)
    assert streamed.value.body["param"] == "stream"  # only a background response streams again


async def test_a_message_delivered_twice_runs_the_turn_once(sdks, standins, instances, azurite):
    here, there, _ = sdks
    conversation = await here.conversations.create()
    queued = await here.responses.create(
        model=standins.deployment, input="once", background=True, conversation=conversation.id
    )
    await until(there, queued.id, "completed")
    async with responses_queue(instances, azurite) as queue:
        await queue.send_message(queued.id)
        await queue.send_message(queued.id)
        assert await messages_left(queue, 0) == 0
    items = await there.conversations.items.list(conversation.id)
    assert len(items.data) == 2  # one user message, one answer: the turn ran once


async def test_a_request_too_big_for_its_row_is_kept_in_blob_storage_and_runs(sdks, standins):
    here, there, _ = sdks
    texts = [f"{n} " + "x" * 90_000 for n in range(3)]  # more than the job row holds beside its record
    queued = await here.responses.create(
        model=standins.deployment,
        input=[{"role": "user", "content": text} for text in texts],
        background=True,
    )
    done = await until(there, queued.id, "completed", "failed")
    assert done["status"] == "completed"
    items = await there.responses.input_items.list(queued.id, order="asc")
    assert [item.content[0].text for item in items.data] == texts


def responses_queue(instances, azurite) -> QueueClient:
    """The instances' queue of background responses on Azurite, as the app encodes its messages."""
    name = f"{instances[0].env['CHAT_TABLE_PREFIX']}-responses"
    return QueueClient.from_connection_string(
        azurite.connection_string, name, message_encode_policy=TextBase64EncodePolicy()
    )


async def messages_left(queue: QueueClient, down_to: int) -> int:
    """How many messages the queue holds once it holds `down_to` or fewer (or after 10 s)."""
    for _ in range(100):
        count = (await queue.get_queue_properties()).approximate_message_count
        if count <= down_to:
            return count
        await asyncio.sleep(0.1)
    return count


async def test_a_message_delivered_again_while_its_turn_runs_leaves_that_run_alone(
    sdks, standins, instances, azurite, hold
):
    here, there, _ = sdks
    conversation = await here.conversations.create()
    queued = await here.responses.create(
        model=standins.deployment, input=f"busy [[hold:{hold}]]", background=True, conversation=conversation.id
    )
    await until(there, queued.id, "in_progress")
    async with responses_queue(instances, azurite) as queue:
        await queue.send_message(queued.id)
        assert await messages_left(queue, 1) == 1  # the copy is taken and let go; the run's own stays
        assert (await retrieved(there, queued.id))["status"] == "in_progress"
        standins.model.holds.release(hold)
        assert (await until(here, queued.id, "completed"))["status"] == "completed"
        assert await messages_left(queue, 0) == 0
    items = await there.conversations.items.list(conversation.id)
    assert len(items.data) == 2


def test_openai_describes_cancel_as_answering_a_response():
    assert SCHEMA.answer_schema("/responses/resp_1/cancel", "post", 200, "application/json") == "Response"
