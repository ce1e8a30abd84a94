"""Background responses: queued at once, run by whichever instance takes the queue's message, their
events stored as they go so any instance can serve them (chat/engine/jobs.py: the row's states).

    submit   place the turn (so every delivery runs it in one place), store the job, queue its ID
    run      one delivery of the message: claim the job under its ETag and run the turn, storing
             the door's events with the row every FLUSH_SECONDS; a duplicate leaves it alone
    cancel   the row says cancelled; the run sees it at its next write (or, while the model is
             quiet, within CHECK_SECONDS) and cuts the answer (the model is asked nothing more, the
             turn is not stored). Before it stores its turn the run writes the row once more, as
             storing: a cancel that finds it so is too late and answers the response as it is, and
             a cancel that came before makes that write clash, so the turn is not stored. Either way
             the cancel's answer is what becomes of the response
    delete   (chat/engine/deletes.py) the row is gone: the run stops as for a cancel; one whose turn
             was stored meanwhile forgets its response, as the delete would have

The last delivery the queue gives (`max_deliveries`: a poison message) fails the job instead of running it; one that
finds the run in progress under a lease that ran out (its worker stopped) fails it too: a turn is
never run twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Protocol

from chat.engine.errors import ChatError, InvalidRequest
from chat.engine.history import Conversation
from chat.engine.jobs import Job
from chat.engine.ports import JobClash, JobQueue, JobStore, TurnDeletes
from chat.engine.turn import Turns
from chat.engine.turns import Done, Failed, Place, StreamedAnswer, StreamEvent, TurnInput

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.2
CANCELLED = "The response was cancelled before its turn was stored."
CHECK_SECONDS = 1.0  # how often a quiet run reads its row, to see a cancel
STOPPED = "The worker running this response stopped before it finished; it was not stored."
POISON = "This response could not be run: every attempt to start it failed."


class JobRunner(Protocol):
    """The door's part of a run: the request its payload encodes, and the events it streams."""

    def request(self, job: Job) -> TurnInput: ...

    def events(self, job: Job, events: AsyncIterator[StreamEvent]) -> AsyncIterator[str]: ...


class Background:
    def __init__(
        self,
        turns: Turns,
        store: JobStore,
        queue: JobQueue,
        responses: TurnDeletes,
        *,
        lease_seconds: float,
        max_deliveries: int,
    ) -> None:
        self._turns = turns
        self._store = store
        self._queue = queue
        self._responses = responses
        self._lease = lease_seconds
        self._max_deliveries = max_deliveries

    @property
    def lease_seconds(self) -> float:
        return self._lease

    async def submit(self, owner: str, request: TurnInput, payload: str) -> Job:
        """Queue a stored response: its row first, then the message that names it."""
        if request.idempotency_key is not None:
            # A retry would queue a second job under a new ID: the key is checked only when the turn runs.
            raise InvalidRequest(
                "An Idempotency-Key is not served with background responses: find a background response "
                "again by the ID its create answered."
            )
        request, place = await self._turns.placed(owner, request)
        assert place.response_id is not None and request.response is not None
        job = Job(place.response_id, owner, place.conversation.id, request.response, payload, continues=place.continues)
        await self._store.create(job)
        await self._queue.send(job.response_id)
        return job

    async def find(self, owner: str, response_id: str) -> Job | None:
        """The owner's background response, as it stands (one whose lease ran out reads failed)."""
        found = await self._store.read(response_id)
        if found is None or found[0].owner != owner:
            return None
        job = found[0]
        if job.status == "in_progress" and job.lease_until < time.time():
            return replace(job, status="failed", error_code="server_error", error_message=STOPPED)
        return job

    async def events(self, job: Job, after: int) -> list[tuple[int, str]]:
        return await self._store.events(job.response_id, after)

    async def cancel(self, owner: str, response_id: str) -> Job | None:
        """Cancel the owner's background response; one already finished, or whose turn is being
        stored (too late: it completes), is returned as it is."""
        while True:
            found = await self._store.read(response_id)
            if found is None or found[0].owner != owner:
                return None
            job, etag = found
            if job.finished or job.storing:
                return job
            cancelled = replace(job, status="cancelled", lease_until=0.0)
            try:
                await self._store.update(cancelled, etag)
            except JobClash:
                continue  # the run wrote meanwhile: read it again
            return cancelled

    async def run(self, response_id: str, delivery: int, runner: JobRunner) -> None:
        """One delivery of the job's message (the first is 1)."""
        found = await self._store.read(response_id)
        if found is None:
            log.info("a queued response has no row (it was deleted): %s", response_id)
            return
        job, etag = found
        if job.finished:
            return
        if job.status == "in_progress":
            if job.lease_until > time.time():
                return  # a duplicate of a live run
            await self._fail(job, etag, STOPPED)
            return
        if delivery >= self._max_deliveries:  # the last the queue gives: every earlier one failed
            await self._fail(job, etag, POISON)
            return
        job = replace(job, status="in_progress", lease_until=time.time() + self._lease)
        try:
            etag = await self._store.update(job, etag)
        except JobClash:
            return  # another delivery claimed it first, or it was cancelled
        try:
            await _Run(self._turns, self._store, self._responses, self._lease, job, etag).go(runner)
        except ChatError as e:
            log.warning("a background response failed to run: %s", e.code)
        except Exception:
            log.exception("a background response failed")

    async def _fail(self, job: Job, etag: str, message: str) -> None:
        failed = replace(job, status="failed", lease_until=0.0, error_code="server_error", error_message=message)
        with contextlib.suppress(JobClash):  # it moved on: whoever moved it settles it
            await self._store.update(failed, etag)


class _Run:
    """One claimed run: the turn streamed, its events written with the row under its ETag."""

    def __init__(
        self, turns: Turns, store: JobStore, responses: TurnDeletes, lease: float, job: Job, etag: str
    ) -> None:
        self._turns = turns
        self._store = store
        self._responses = responses
        self._lease = lease
        self.job = job
        self.etag = etag
        self.streamed: StreamedAnswer | None = None
        self.outcome: Done | Failed | None = None
        # The run's writes of its row go one at a time: each is conditional on the ETag the one
        # before it got, and a clash means someone else (a cancel, a delete) wrote it.
        self._writing = asyncio.Lock()

    async def go(self, runner: JobRunner) -> None:
        """Write what the run has every FLUSH_SECONDS (and the lease when a third of it is gone),
        whether or not the model is writing meanwhile."""
        pending: list[tuple[int, str]] = []
        number = self.job.events
        renewed = checked = time.monotonic()
        chunks = runner.events(self.job, self._events(runner))
        next_chunk = asyncio.ensure_future(anext(chunks, None))
        try:
            while True:
                done, _ = await asyncio.wait({next_chunk}, timeout=FLUSH_SECONDS)
                if done:
                    chunk = next_chunk.result()
                    if chunk is None:
                        break
                    pending.append((number, chunk))
                    number += 1
                    next_chunk = asyncio.ensure_future(anext(chunks, None))
                    if self.outcome is not None:
                        continue  # the last events go with the final row
                if not done and not pending and time.monotonic() - checked > CHECK_SECONDS:
                    checked = time.monotonic()
                    if not await self._unchanged():
                        return  # cancelled while the model was quiet
                stale = time.monotonic() - renewed > self._lease / 3
                if (pending and not done) or stale or len(pending) >= 40:
                    if not await self._write(number, pending):
                        return
                    pending, renewed = [], time.monotonic()
            await self._finish(number, pending)
        finally:
            if self.outcome is None and self.streamed is not None and self.streamed.stop is not None:
                self.streamed.stop()
            if not next_chunk.done():
                next_chunk.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await next_chunk
            await chunks.aclose()  # type: ignore[attr-defined]

    async def _events(self, runner: JobRunner) -> AsyncIterator[StreamEvent]:
        job = self.job
        place = Place(Conversation(job.owner, job.conversation_id), job.continues, job.response_id)
        try:
            self.streamed = await self._turns.stream_at(place, runner.request(job), before_store=self._storing)
        except ChatError as e:
            self.outcome = Failed(e)
            yield self.outcome
            return
        async for event in self.streamed.events:
            if isinstance(event, Done | Failed):
                self.outcome = event
            yield event

    async def _unchanged(self) -> bool:
        async with self._writing:
            found = await self._store.read(self.job.response_id)
            return found is not None and found[1] == self.etag

    async def _write(self, number: int, events: list[tuple[int, str]]) -> bool:
        """The events (`number` of them stored in all) and the renewed lease; False if the row
        moved on (cancelled): stop."""
        async with self._writing:
            job = replace(self.job, events=number, lease_until=time.time() + self._lease)
            try:
                self.etag = await self._store.update(job, self.etag, events)
            except JobClash:
                return False
            self.job = job
            return True

    async def _storing(self) -> None:
        """The answer is whole: the row says its turn is being stored, so a cancel from now on is
        too late (and says so), or, cancelled or deleted before, nothing is stored."""
        async with self._writing:
            job = replace(self.job, storing=True, lease_until=time.time() + self._lease)
            try:
                self.etag = await self._store.update(job, self.etag)
            except JobClash:
                raise ChatError(CANCELLED, code="cancelled") from None
            self.job = job

    async def _finish(self, number: int, pending: list[tuple[int, str]]) -> None:
        outcome = self.outcome
        if isinstance(outcome, Done):
            final = replace(self.job, status="completed", events=number, lease_until=0.0)
        else:
            error = outcome.error if outcome is not None else ChatError("The answer ended before it was settled.")
            final = replace(
                self.job,
                status="failed",
                events=number,
                lease_until=0.0,
                error_code=error.code,
                error_message=str(error),
            )
        try:
            async with self._writing:
                await self._store.update(final, self.etag, pending)
        except JobClash:
            if not isinstance(outcome, Done):
                return  # cancelled meanwhile: nothing was stored, and the row says so
            # The turn is stored, and the row said `storing` before it was, so no cancel wrote it
            # since (but one from a version that did not know the mark): deleted, or it completed.
            found = await self._store.read(self.job.response_id)
            if found is None:
                # Deleted while its turn was being stored: the response goes too, as the delete meant.
                await self._responses.delete_response(self.job.owner, self.job.response_id)
                return
            with contextlib.suppress(JobClash):  # deleted since: the delete has taken the events
                await self._store.update(replace(final, events=number), found[1], pending)
