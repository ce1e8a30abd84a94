"""The local host's queue worker: what the Functions queue trigger does in Azure, done by polling
the same queue (Azurite's locally) for chat/local.py. Each message is handed to the same handler the
trigger calls (chat.web.openai.background.run_delivery), a few at a time, and deleted once it ran;
one whose handler failed is left to reappear after its visibility timeout, as in Azure.
"""

from __future__ import annotations

import asyncio
import logging

from chat.dependencies import Dependencies
from chat.engine.errors import ChatError
from chat.storage.queue import Delivery, JobQueue
from chat.web.openai.background import run_delivery

log = logging.getLogger(__name__)

IDLE_SECONDS = 0.25  # after a message, between looks at an empty queue; doubling up to MAX_IDLE_SECONDS
MAX_IDLE_SECONDS = 2.0
FAILING_SECONDS = 5.0  # between looks when the queue does not answer
AT_ONCE = 4  # messages run at once by one instance
SHUTDOWN_GRACE_SECONDS = 30.0


class QueueWorker:
    def __init__(self, deps: Dependencies, queue: JobQueue) -> None:
        self._deps = deps
        self._queue = queue
        self._visibility = int(deps.engine.background.lease_seconds) if deps.engine.background else 300
        self._running: set[asyncio.Task[None]] = set()

    async def poll(self) -> None:
        idle = IDLE_SECONDS
        while True:
            room = AT_ONCE - len(self._running)
            taken = 0
            if room > 0:
                try:
                    async for delivery in self._queue.receive(self._visibility, batch=room):
                        taken += 1
                        task = asyncio.create_task(self._run(delivery))
                        self._running.add(task)
                        task.add_done_callback(self._running.discard)
                except ChatError as e:
                    log.warning("the queue of background responses does not answer: %s", e.code)
                    await asyncio.sleep(FAILING_SECONDS)
                    continue
            if taken:
                idle = IDLE_SECONDS
            else:
                await asyncio.sleep(idle)
                idle = min(2 * idle, MAX_IDLE_SECONDS)

    async def aclose(self) -> None:
        """Let the runs in progress finish for the grace period; cut what is left."""
        if self._running:
            _, pending = await asyncio.wait(set(self._running), timeout=SHUTDOWN_GRACE_SECONDS)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    async def _run(self, delivery: Delivery) -> None:
        try:
            await run_delivery(self._deps, delivery.response_id, delivery.dequeue_count)
        except ChatError as e:
            log.warning("a background response's message is left for another try: %s", e.code)
            return
        await self._queue.delete(delivery)
