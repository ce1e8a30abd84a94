"""The background run's state machine (chat.engine.background) with fakes of its ports: queued,
claimed once, completed or failed; duplicates, dead workers, poison messages and cancels."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from chat.bootstrap import Policy, compose
from chat.engine.background import POISON, STOPPED, Background
from chat.engine.errors import ModelUnavailable
from chat.engine.items import message
from chat.engine.turns import TurnInput
from tests.fakes.engine import FakeModel, no_reserve_backoff  # noqa: F401 (a fixture)
from tests.fakes.jobs import FakeJobs, FakeQueue, FakeRunner
from tests.fakes.store import FakeStore

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_reserve_backoff")]
REQUEST = TurnInput((message("user", "hi"),), None, response="{}")


def engine(model: FakeModel | None = None) -> tuple[Background, FakeJobs, FakeQueue, FakeStore]:
    store, jobs, queue = FakeStore(), FakeJobs(), FakeQueue()
    composed = compose(store, store, store, model or FakeModel(), Policy("sys", 1000), jobs=(jobs, queue))
    assert composed.background is not None
    return composed.background, jobs, queue, store


async def test_a_submitted_job_is_queued_by_its_id_then_runs_once_to_completed():
    background, _, queue, store = engine()
    job = await background.submit("ada", REQUEST, "payload")
    assert job.status == "queued" and queue.sent == [job.response_id]
    assert (await background.find("ada", job.response_id)).status == "queued"
    assert await background.find("bob", job.response_id) is None  # another owner's is not found
    runner = FakeRunner(REQUEST)
    await background.run(job.response_id, 1, runner)
    done = await background.find("ada", job.response_id)
    assert done.status == "completed" and runner.seen[-1] == "Done"
    assert len(store.appended) == 1
    assert [n for n, _ in await background.events(done, -1)] == list(range(len(runner.seen)))
    await background.run(job.response_id, 2, FakeRunner(REQUEST))  # delivered again
    assert len(store.appended) == 1


async def test_a_duplicate_delivery_of_a_live_run_leaves_it_alone():
    background, jobs, _, store = engine()
    job = await background.submit("ada", REQUEST, "p")
    row, etag = jobs.rows[job.response_id]
    jobs.rows[job.response_id] = (replace(row, status="in_progress", lease_until=time.time() + 60), etag)
    await background.run(job.response_id, 2, FakeRunner(REQUEST))
    assert jobs.rows[job.response_id][0].status == "in_progress" and store.appended == []


async def test_a_run_whose_worker_stopped_is_failed_never_run_again():
    background, jobs, _, store = engine()
    job = await background.submit("ada", REQUEST, "p")
    row, etag = jobs.rows[job.response_id]
    jobs.rows[job.response_id] = (replace(row, status="in_progress", lease_until=time.time() - 1), etag)
    assert (await background.find("ada", job.response_id)).status == "failed"  # read so at once
    await background.run(job.response_id, 2, FakeRunner(REQUEST))
    failed = jobs.rows[job.response_id][0]
    assert failed.status == "failed" and failed.error_message == STOPPED and store.appended == []


async def test_a_poison_message_fails_its_response():
    background, jobs, _, store = engine()
    job = await background.submit("ada", REQUEST, "p")
    await background.run(job.response_id, 5, FakeRunner(REQUEST))
    failed = jobs.rows[job.response_id][0]
    assert failed.status == "failed" and failed.error_message == POISON and store.appended == []


async def test_a_model_that_fails_fails_the_job_and_stores_nothing():
    background, jobs, _, store = engine(FakeModel(failures=[ModelUnavailable("down")]))
    job = await background.submit("ada", REQUEST, "p")
    await background.run(job.response_id, 1, FakeRunner(REQUEST))
    failed = jobs.rows[job.response_id][0]
    assert failed.status == "failed" and failed.error_code == ModelUnavailable.code and store.appended == []


async def test_a_cancel_stops_the_run_and_nothing_is_stored():
    gate = asyncio.Event()
    background, jobs, _, store = engine(FakeModel(gate=gate))
    job = await background.submit("ada", REQUEST, "p")
    running = asyncio.create_task(background.run(job.response_id, 1, FakeRunner(REQUEST)))
    for _ in range(500):
        if jobs.rows[job.response_id][0].status == "in_progress":
            break
        await asyncio.sleep(0.01)
    assert (await background.cancel("ada", job.response_id)).status == "cancelled"
    await asyncio.wait_for(running, timeout=10)  # the run sees the cancel within CHECK_SECONDS
    gate.set()
    assert jobs.rows[job.response_id][0].status == "cancelled" and store.appended == []
    assert await background.cancel("bob", job.response_id) is None
    assert (await background.cancel("ada", job.response_id)).status == "cancelled"  # as it is


async def test_a_cancel_that_comes_as_the_turn_is_stored_is_too_late_and_answers_so():
    background, jobs, _, store = engine()
    job = await background.submit("ada", REQUEST, "p")
    answers = []
    append_turn = store.append_turn

    async def commit(*args):
        answers.append(await background.cancel("ada", job.response_id))  # lands as the turn is stored
        return await append_turn(*args)

    store.append_turn = commit
    await background.run(job.response_id, 1, FakeRunner(REQUEST))
    [answer] = answers
    assert answer.status == "in_progress"  # not "cancelled": the response completes, as it said
    assert jobs.rows[job.response_id][0].status == "completed" and len(store.appended) == 1


async def test_a_cancel_that_comes_just_before_the_turn_is_stored_stores_nothing():
    background, jobs, _, store = engine()
    job = await background.submit("ada", REQUEST, "p")
    answers = []
    update = jobs.update

    async def racing(row, etag, events=()):
        if row.storing and not answers:  # the cancel lands just before the run marks the row storing
            answers.append(await background.cancel("ada", row.response_id))
        return await update(row, etag, events)

    jobs.update = racing
    runner = FakeRunner(REQUEST)
    await background.run(job.response_id, 1, runner)
    [answer] = answers
    assert answer.status == "cancelled"
    assert jobs.rows[job.response_id][0].status == "cancelled" and store.appended == []
    assert runner.seen[-1] == "Failed"
