"""Background responses on the OpenAI-compatible door (`background: true`): the engine's
chat/engine/background.py in OpenAI's shapes.

    POST /v1/responses        the response at once, `queued` (or, with `stream`, its events as the
                              run stores them); the body is kept with the job, and its worker reads it
                              again with the same parser (preparing.py), so what runs is what was checked
    GET  /v1/responses/{id}   `queued`, `in_progress` with the output its stored events hold so far,
                              `failed` or `cancelled`; a completed one is its stored turn, as any
    GET  ...?stream=true&starting_after=N   the stored events numbered above N, then the new ones
                              until the run ends
    POST /v1/responses/{id}/cancel          `cancelled`, or the response as it is once finished

The worker's side (`Runner`, `run_delivery`) turns the engine's stream into the same server-sent
events a streamed response sends, which the engine stores as they come.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from starlette.responses import JSONResponse, Response, StreamingResponse

from chat.dependencies import Dependencies
from chat.engine.background import Background
from chat.engine.jobs import Job
from chat.engine.turns import StreamEvent, TurnInput
from chat.settings import Settings
from chat.web import toolkit
from chat.web.openai.errors import ChatError, InvalidParameter
from chat.web.openai.events import door_events, response_events
from chat.web.openai.objects import fail
from chat.web.openai.preparing import Prepared, prepare

EVENT_STREAM = "text/event-stream"
POLL_SECONDS = 0.25  # how often a stream of a running response looks for its new events


def engine_of(deps: Dependencies) -> Background:
    if deps.engine.background is None:
        raise InvalidParameter(
            "Background responses need a queue, and this deployment has none (its storage names no queue service).",
            param="background",
        )
    return deps.engine.background


async def submit(deps: Dependencies, owner: str, prepared: Prepared, body: bytes) -> Response:
    background = engine_of(deps)
    payload = json.dumps({"body": body.decode(), "idempotency_key": prepared.turn.idempotency_key})
    job = await background.submit(owner, prepared.turn, payload)
    if prepared.parsed.stream:
        return stream(background, owner, job, -1)
    return JSONResponse(await view(background, job))


async def find(deps: Dependencies, owner: str, response_id: str) -> Job | None:
    if deps.engine.background is None:
        return None
    return await deps.engine.background.find(owner, response_id)


async def view(background: Background, job: Job) -> dict[str, Any]:
    """The response of a job not completed (a completed one is its stored turn)."""
    skeleton = skeleton_of(job)
    if job.status == "queued":
        return {**skeleton, "status": "queued"}
    events = [_data(chunk) for _, chunk in await background.events(job, -1)]
    if job.status == "failed":
        if events and events[-1]["type"] == "response.failed":
            return dict(events[-1]["response"])
        return fail(skeleton, ChatError(job.error_message or "The response failed.", code=job.error_code))
    output = _output(events)
    if job.status == "cancelled":
        for item in output:
            if item.get("status") == "in_progress":
                item["status"] = "incomplete"
    return {**skeleton, "status": job.status, "output": output}


def stream(background: Background, owner: str, job: Job, after: int) -> Response:
    return StreamingResponse(
        _stored(background, owner, job, after), media_type=EVENT_STREAM, headers=toolkit.STREAM_HEADERS
    )


async def _stored(background: Background, owner: str, job: Job, after: int) -> AsyncIterator[bytes]:
    """The run's events above `after`, as they are stored, until the run has ended. The row is read
    before the events: once it says the run ended, the events read after it are all there are."""
    current: Job | None = job
    while current is not None:
        for number, chunk in await background.events(current, after):
            after = number
            yield chunk.encode()
        if current.finished:
            return
        await asyncio.sleep(POLL_SECONDS)
        current = await background.find(owner, job.response_id)


async def cancel(deps: Dependencies, owner: str, response_id: str) -> Job | None:
    if deps.engine.background is None:
        return None
    return await deps.engine.background.cancel(owner, response_id)


def skeleton_of(job: Job) -> dict[str, Any]:
    return {**json.loads(job.record), "id": job.response_id}


class Runner:
    """The door's part of a run (chat.engine.background.JobRunner)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def request(self, job: Job) -> TurnInput:
        payload = json.loads(job.payload)
        prepared = prepare(payload["body"].encode(), self._settings, payload["idempotency_key"], created_at=0)
        return replace(prepared.turn, response=job.record)

    async def events(self, job: Job, events: AsyncIterator[StreamEvent]) -> AsyncIterator[str]:
        async for chunk in response_events(skeleton_of(job), door_events(events)):
            yield chunk.decode()


async def run_delivery(deps: Dependencies, response_id: str, dequeue_count: int) -> None:
    """One delivery of a queue message: what the queue trigger and the local poll loop call."""
    if deps.engine.background is not None:
        await deps.engine.background.run(response_id, dequeue_count, Runner(deps.settings))


def _data(chunk: str) -> dict[str, Any]:
    line = next(line for line in chunk.splitlines() if line.startswith("data: "))
    return dict(json.loads(line[len("data: ") :]))


def _output(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The output items the events have shown so far, each as far as it has come."""
    items: dict[int, dict[str, Any]] = {}
    for event in events:
        kind = event["type"]
        if kind in ("response.output_item.added", "response.output_item.done"):
            items[event["output_index"]] = copy.deepcopy(event["item"])
        elif kind == "response.content_part.added":
            items[event["output_index"]].setdefault("content", []).append(dict(event["part"]))
        elif kind in ("response.output_text.delta", "response.refusal.delta"):
            part = items[event["output_index"]]["content"][event["content_index"]]
            field = "text" if kind == "response.output_text.delta" else "refusal"
            part[field] = part.get(field, "") + event["delta"]
        elif kind == "response.function_call_arguments.delta":
            item = items[event["output_index"]]
            item["arguments"] = item.get("arguments", "") + event["delta"]
    return [items[index] for index in sorted(items)]
