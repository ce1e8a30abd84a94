"""A background response: what its row holds from the request that queued it to its end.

    queued ──claim──► in_progress ──► in_progress, storing ──► completed | failed
       │                  │   └─────────────────────────────────► failed
       └──── cancel ──────┴──► cancelled

`storing` is written once the answer is whole, before its turn is stored: from then on a cancel
is too late and leaves the row alone, so what a cancel answers is what becomes of the response.

The row is the run's one truth for every instance: the queue's message names it and nothing else.
It keeps who asked (`owner`), where the turn goes (the conversation or chain and the turn it
continues, fixed when it was queued so a second delivery cannot place it elsewhere), the door's
record of the response, and the request as the door encoded it (`payload`, opaque here). A claim
holds a lease: a delivery that finds the run in progress under a live lease is a duplicate and
leaves it alone; one that finds the lease run out knows the worker stopped, and fails the run
rather than run the turn twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from chat.engine.items import TurnRef

JobStatus = Literal["queued", "in_progress", "completed", "failed", "cancelled"]
FINISHED: tuple[JobStatus, ...] = ("completed", "failed", "cancelled")


@dataclass(frozen=True)
class Job:
    response_id: str
    owner: str
    conversation_id: str
    record: str  # the door's record of the response, kept with its turn
    payload: str  # the request, as the door encoded it
    status: JobStatus = "queued"
    continues: TurnRef | None = None
    lease_until: float = 0.0  # epoch seconds: a claim is live until then
    error_code: str | None = None  # why it failed, when the engine failed it
    error_message: str | None = None
    events: int = 0  # how many events the run has stored
    storing: bool = False  # the run is storing its turn: too late to cancel

    @property
    def finished(self) -> bool:
        return self.status in FINISHED
