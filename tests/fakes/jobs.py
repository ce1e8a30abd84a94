"""Fakes of the background ports (chat.engine.ports.JobStore, JobQueue): rows in a dict with an
ETag each, and a queue that only records what was sent."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from chat.engine.history import Conversation
from chat.engine.ids import response_id_prefix
from chat.engine.jobs import Job
from chat.engine.ports import JobClash
from chat.engine.turns import StreamEvent, TurnInput

_etags = itertools.count(1)


@dataclass
class FakeJobs:
    rows: dict[str, tuple[Job, str]] = field(default_factory=dict)
    stored: dict[str, dict[int, str]] = field(default_factory=dict)

    async def create(self, job: Job) -> None:
        assert job.response_id not in self.rows
        self.rows[job.response_id] = (job, f"e{next(_etags)}")

    async def read(self, response_id: str) -> tuple[Job, str] | None:
        return self.rows.get(response_id)

    async def update(self, job: Job, etag: str, events: Sequence[tuple[int, str]] = ()) -> str:
        if job.response_id not in self.rows or self.rows[job.response_id][1] != etag:
            raise JobClash(job.response_id)
        self.stored.setdefault(job.response_id, {}).update(dict(events))
        new = f"e{next(_etags)}"
        self.rows[job.response_id] = (job, new)
        return new

    async def events(self, response_id: str, after: int) -> list[tuple[int, str]]:
        return sorted((n, e) for n, e in self.stored.get(response_id, {}).items() if n > after)

    async def delete(self, response_id: str) -> None:
        self.rows.pop(response_id, None)
        self.stored.pop(response_id, None)

    async def delete_placed_in(self, conversation: Conversation) -> None:
        prefix = response_id_prefix(conversation.key)
        for response_id in [r for r in {*self.rows, *self.stored} if r.startswith(prefix)]:
            await self.delete(response_id)


@dataclass
class FakeQueue:
    sent: list[str] = field(default_factory=list)

    async def send(self, response_id: str) -> None:
        self.sent.append(response_id)


@dataclass
class FakeRunner:
    """The door's part: the request is the one given; each engine event becomes its class's name."""

    request_given: TurnInput
    seen: list[str] = field(default_factory=list)

    def request(self, job: Job) -> TurnInput:
        return self.request_given

    async def events(self, job: Job, events: AsyncIterator[StreamEvent]) -> AsyncIterator[str]:
        async for event in events:
            self.seen.append(type(event).__name__)
            yield type(event).__name__
