"""A streamed answer's drain: a task of its own reads the model's events, hands them to the reader
through a queue, and stores the turn when the model finishes. It gives way to the reader after each
event, so what the client reads never waits for the CPU of the commit or of the events after it.

A client that leaves does not stop the task: the answer is stored and waits in the history when
the client comes back. Every stream ends with one Done or Failed, whatever happens to that task
(shut-down cancels what is left after its grace period, and says which turns it cut).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace

from chat.engine.commit import TurnWriter
from chat.engine.errors import ChatError, DuplicateRequest, ServerShuttingDown
from chat.engine.history import History
from chat.engine.model import Finished, ModelEvent, TextDelta
from chat.engine.ports import TurnSpan
from chat.engine.quota import QuotaLedger, Reservation
from chat.engine.runs import Progress, Runs
from chat.engine.turns import Done, Failed, Place, StreamEvent, TurnInput, new_turn

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 30.0
CUT = "The server stopped before the answer was finished; it was not stored."
# Awaited once the answer is whole, before its turn is stored; a ChatError it raises stores nothing.
BeforeStore = Callable[[], Awaitable[None]]


@dataclass
class Drain:
    """A streamed turn being drained: where it goes, what it read, its reservation, its span, the
    response it answers (readable in progress), and its queue, which always gets a last event."""

    place: Place
    request: TurnInput
    history: History
    reservation: Reservation | None
    span: TurnSpan
    run: Progress | None = None
    before_store: BeforeStore | None = None
    queue: asyncio.Queue[StreamEvent] = field(default_factory=asyncio.Queue)
    ended: bool = False
    stored: bool = False  # its turn is stored (and with it, its in-progress row closed)
    task: asyncio.Task[None] | None = None

    def stop(self) -> None:
        """Cut the answer: the model is asked nothing more, the turn is not stored."""
        if self.task is not None:
            self.task.cancel()

    def put(self, event: StreamEvent) -> None:
        if not self.ended:
            self.ended = isinstance(event, Done | Failed)
            self.queue.put_nowait(event)

    async def events(self) -> AsyncIterator[StreamEvent]:
        while True:
            event = await self.queue.get()
            yield event
            if isinstance(event, Done | Failed):
                return


class Streams:
    """The drains of this worker, and their end at shut-down."""

    def __init__(self, writer: TurnWriter, ledger: QuotaLedger, runs: Runs, *, shutdown_grace_seconds: float) -> None:
        self._writer = writer
        self._ledger = ledger
        self._runs = runs
        self._grace = shutdown_grace_seconds
        self._drains: dict[asyncio.Task[None], Drain] = {}

    def start(self, drain: Drain, events: AsyncIterator[ModelEvent]) -> AsyncIterator[StreamEvent]:
        """Drain the model's events in a task of their own; what the reader reads."""
        task = asyncio.create_task(self._drain(drain, events))
        drain.task = task
        self._drains[task] = drain
        task.add_done_callback(self._drained)
        return drain.events()

    async def aclose(self) -> None:
        """Let answers still streaming to a departed client finish and be stored, for the grace
        period; then cut what is left, and say which turns were cut."""
        if not self._drains:
            return
        _, pending = await asyncio.wait(set(self._drains), timeout=self._grace)
        for task in pending:
            drain = self._drains.get(task)
            if drain is not None:
                log.warning("shut-down cut the streamed turn of %s: not stored", drain.place.conversation.key[:16])
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    def _drained(self, task: asyncio.Task[None]) -> None:
        """Whatever ended the drain (even a cancel before it began), its reader gets a last event."""
        drain = self._drains.pop(task)
        if not drain.ended:
            drain.put(Failed(ServerShuttingDown(CUT)))

    async def _drain(self, drain: Drain, events: AsyncIterator[ModelEvent]) -> None:
        try:
            await self._drain_turn(drain, events)
        finally:
            if drain.run is not None:
                await self._runs.end(drain.run, closed=drain.stored)

    async def _drain_turn(self, drain: Drain, events: AsyncIterator[ModelEvent]) -> None:
        reservation, span = drain.reservation, drain.span
        text: list[str] = []
        answered = False
        try:
            async for event in events:
                if not isinstance(event, Finished):
                    if isinstance(event, TextDelta):
                        text.append(event.text)
                    if drain.run is not None:
                        drain.run.add(event)
                    drain.put(event)
                    # The reader forwards it now: events that arrive together (a short answer
                    # and its end, in one read) would otherwise wait for the turn's commit.
                    await asyncio.sleep(0)
                    continue
                answered = True
                completion = event.completion
                turn = new_turn(
                    drain.place, drain.request, completion.outputs, completion.finish_reason, completion.usage
                )
                turn = replace(turn, ends_run=drain.run is not None)
                if drain.before_store is not None:
                    await drain.before_store()
                stored = await self._writer.store_turn(
                    drain.place.conversation, drain.history, turn, reservation, store=drain.request.store
                )
                if stored is not None:
                    # The client has read an answer that is not the one kept: say so.
                    raise DuplicateRequest(
                        "A concurrent request with the same Idempotency-Key was stored first, so this answer "
                        "was not kept; send the request again with that key to read the stored one."
                    )
                drain.stored = drain.request.store
                span.succeed(finish_reason=completion.finish_reason, usage=completion.usage)
                drain.put(Done(completion.finish_reason, completion.usage, completion.outputs, turn.created_at))
        except ChatError as e:
            await self._ledger.settle_cut(reservation, answered, text)
            span.fail(e)
            drain.put(Failed(e))
        except asyncio.CancelledError as e:
            # Shut-down: the cut answer is charged what it used, the span ends, and _drained gives
            # the reader its last event.
            await self._ledger.settle_cut(reservation, answered, text)
            span.fail(e)
            raise
        except Exception as e:
            log.exception("a streamed turn failed")
            await self._ledger.settle_cut(reservation, answered, text)
            span.fail(e)
            drain.put(Failed(ChatError("The answer failed.")))
        if not drain.ended:
            # The model's events ended without a Finished: an adapter's bug, but the stream still ends.
            log.error("a streamed answer ended without finishing")
            await self._ledger.settle_cut(reservation, answered, text)
            span.fail(RuntimeError("stream ended early"))
            drain.put(Failed(ChatError("The answer failed.")))
