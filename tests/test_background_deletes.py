"""Deletes of background responses (chat.engine.deletes with chat.engine.background) with fakes of
their ports: the job goes with its response or its conversation, and a run it races stops."""

from __future__ import annotations

import asyncio

import pytest

from chat.bootstrap import Engine, Policy, compose
from chat.engine.errors import NotFound
from chat.engine.items import message
from chat.engine.turns import TurnInput
from tests.fakes.engine import FakeModel, no_reserve_backoff  # noqa: F401 (a fixture)
from tests.fakes.jobs import FakeJobs, FakeQueue, FakeRunner
from tests.fakes.store import FakeStore

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_reserve_backoff")]
REQUEST = TurnInput((message("user", "hi"),), None, response="{}")


def engine(model: FakeModel | None = None) -> tuple[Engine, FakeJobs, FakeStore]:
    store, jobs = FakeStore(), FakeJobs()
    return (
        compose(store, store, store, model or FakeModel(), Policy("sys", 1000), jobs=(jobs, FakeQueue())),
        jobs,
        store,
    )


async def test_deleting_a_queued_response_deletes_its_job_and_it_never_runs():
    composed, jobs, store = engine()
    assert composed.background is not None
    job = await composed.background.submit("ada", REQUEST, "p")
    with pytest.raises(NotFound):
        await composed.deletes.response("bob", job.response_id)  # another owner's: not found, kept
    assert job.response_id in jobs.rows
    await composed.deletes.response("ada", job.response_id)
    assert job.response_id not in jobs.rows
    await composed.background.run(job.response_id, 1, FakeRunner(REQUEST))
    assert store.appended == [] and job.response_id not in jobs.rows and job.response_id not in jobs.stored


async def test_a_delete_while_the_run_waits_on_the_model_stops_it_and_nothing_is_stored():
    gate = asyncio.Event()
    composed, jobs, store = engine(FakeModel(gate=gate))
    assert composed.background is not None
    job = await composed.background.submit("ada", REQUEST, "p")
    running = asyncio.create_task(composed.background.run(job.response_id, 1, FakeRunner(REQUEST)))
    for _ in range(500):
        if jobs.rows[job.response_id][0].status == "in_progress":
            break
        await asyncio.sleep(0.01)
    await composed.deletes.response("ada", job.response_id)
    await asyncio.wait_for(running, timeout=10)  # the run finds its row gone within CHECK_SECONDS
    gate.set()
    assert job.response_id not in jobs.rows and job.response_id not in jobs.stored and store.appended == []


async def test_deleting_the_conversation_deletes_the_jobs_placed_in_it_only():
    composed, jobs, _ = engine()
    assert composed.background is not None
    inside = await composed.background.submit("ada", TurnInput(REQUEST.inputs, "c1", response="{}"), "p")
    outside = await composed.background.submit("ada", TurnInput(REQUEST.inputs, "c2", response="{}"), "p")
    await composed.deletes.conversation("ada", "c1")
    assert inside.response_id not in jobs.rows and outside.response_id in jobs.rows
