"""Deletes take background responses' jobs with them, read straight from Azurite: a response
deleted, its conversation deleted (through either door), and a delete while the response runs.
Nothing is left of the job: not its row, not the request body (in its row or its blob), not the
events the run stored."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import quote

import aiohttp
import openai
import pytest
from azure.data.tables import TableClient
from azure.storage.blob import ContainerClient

from tests.support.api import signed_in
from tests.test_background_e2e import retrieved, until

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]
BIG = [f"{n} " + "x" * 90_000 for n in range(3)]  # more than the job row holds: the body goes to a blob


def job_rows(azurite, instances, response_id: str) -> list[str]:
    name = instances[0].env["CHAT_TABLE_PREFIX"] + "messages"
    with TableClient.from_connection_string(azurite.connection_string, table_name=name) as table:
        rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": "j" + response_id})
        return [row["RowKey"] for row in rows]


def job_blobs(azurite, instances, response_id: str) -> list[str]:
    container = instances[0].env["CHAT_TABLE_PREFIX"].lower() + "turns"
    with ContainerClient.from_connection_string(azurite.connection_string, container) as blobs:
        if not blobs.exists():
            return []
        return [blob.name for blob in blobs.list_blobs(name_starts_with=f"jobs/{response_id}")]


async def completed_big(sdk, there, model: str, **kwargs) -> str:
    queued = await sdk.responses.create(
        model=model, input=[{"role": "user", "content": text} for text in BIG], background=True, **kwargs
    )
    assert (await until(there, queued.id, "completed", "failed"))["status"] == "completed"
    return queued.id


async def test_a_deleted_background_response_leaves_no_job_rows_nor_blob(sdks, standins, instances, azurite):
    here, there, elsewhere = sdks
    response_id = await completed_big(here, there, standins.deployment)
    rows = job_rows(azurite, instances, response_id)
    assert "job" in rows and any(key.startswith("e") for key in rows)  # the row and the stored events
    assert job_blobs(azurite, instances, response_id) == [f"jobs/{response_id}"]
    deleted = await elsewhere.responses.with_raw_response.delete(response_id)
    assert deleted.http_response.json() == {"id": response_id, "object": "response.deleted", "deleted": True}
    assert job_rows(azurite, instances, response_id) == []
    assert job_blobs(azurite, instances, response_id) == []
    with pytest.raises(openai.NotFoundError):
        await there.responses.retrieve(response_id)
    with pytest.raises(openai.NotFoundError):
        await there.responses.retrieve(response_id, stream=True)
    with pytest.raises(openai.NotFoundError):
        await here.responses.delete(response_id)  # a second delete finds nothing


async def test_another_owners_delete_leaves_the_job_alone(sdks, standins, instances, azurite):
    here, there, _ = sdks
    queued = await here.responses.create(model=standins.deployment, input="mine", background=True)
    await until(there, queued.id, "completed")
    async with openai.AsyncOpenAI(
        base_url=f"{instances[1].url}/api/v1",
        api_key="unused-here",
        max_retries=0,
        default_headers=signed_in(uuid.uuid4().hex),
    ) as other:
        with pytest.raises(openai.NotFoundError):
            await other.responses.delete(queued.id)
    assert "job" in job_rows(azurite, instances, queued.id)
    assert (await retrieved(here, queued.id))["status"] == "completed"


async def test_deleting_the_conversation_deletes_its_background_jobs(sdks, standins, instances, azurite):
    here, there, _ = sdks
    conversation = await here.conversations.create()
    big = await completed_big(here, there, standins.deployment, conversation=conversation.id)
    small = await here.responses.create(
        model=standins.deployment, input="and more", background=True, conversation=conversation.id
    )
    await until(there, small.id, "completed")
    elsewhere = await here.responses.create(model=standins.deployment, input="not in it", background=True)
    await until(there, elsewhere.id, "completed")
    assert job_rows(azurite, instances, big) and job_rows(azurite, instances, small.id)
    await there.conversations.delete(conversation.id)
    for response_id in (big, small.id):
        assert job_rows(azurite, instances, response_id) == []
        assert job_blobs(azurite, instances, response_id) == []
        with pytest.raises(openai.NotFoundError):
            await here.responses.retrieve(response_id)
    assert "job" in job_rows(azurite, instances, elsewhere.id)  # another conversation's job stays
    assert (await retrieved(here, elsewhere.id))["status"] == "completed"


async def test_the_chat_routes_delete_takes_the_jobs_too(sdks, standins, instances, azurite, user):
    here, there, _ = sdks
    conversation = await here.conversations.create()
    queued = await here.responses.create(
        model=standins.deployment, input="chat door", background=True, conversation=conversation.id
    )
    await until(there, queued.id, "completed")
    path = f"{instances[2].url}/api/conversations/{quote(conversation.id, safe='')}"
    async with aiohttp.ClientSession(headers=user) as chat, chat.delete(path) as answer:
        assert answer.status in (200, 204)
    assert job_rows(azurite, instances, queued.id) == []
    with pytest.raises(openai.NotFoundError):
        await here.responses.retrieve(queued.id)


@pytest.fixture
def hold(standins):
    name = "bg-delete-running"
    yield name
    standins.model.holds.release(name)


async def test_a_delete_while_the_response_runs_stops_it_and_nothing_comes_back(
    sdks, standins, instances, azurite, hold
):
    here, there, elsewhere = sdks
    conversation = await here.conversations.create()
    queued = await here.responses.create(
        model=standins.deployment, input=f"long [[hold:{hold}]]", background=True, conversation=conversation.id
    )
    await until(there, queued.id, "in_progress")
    await elsewhere.responses.delete(queued.id)
    assert job_rows(azurite, instances, queued.id) == []
    await asyncio.sleep(2.5)  # the run reads its row every second while the model is quiet: it stops
    standins.model.holds.release(hold)
    await asyncio.sleep(1.0)
    assert job_rows(azurite, instances, queued.id) == []  # the run wrote nothing back
    with pytest.raises(openai.NotFoundError):
        await there.responses.retrieve(queued.id)
    items = await here.conversations.items.list(conversation.id)
    assert items.data == []  # the turn was not stored
