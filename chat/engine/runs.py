"""Responses still being answered: what a read of one finds before its turn is stored.

A streamed answer of the OpenAI-compatible door is a run from its first event until its turn is
stored (or it fails). While it runs, a read of its response finds it in progress: on the instance
streaming it, with every output item so far; on any other, from the row the run wrote when it
began (RunStore), with no output yet. Writing the output as it grows would cost a storage write
every few tokens for a read that polls; the stored turn has all of it a moment later.

The row's write runs beside the model's call, and the stream begins once both are done: the
write adds no wait of its own, and once a client sees the response created, every instance finds
it. The row's delete waits for the write, so a late write never outlives the run. Either failing is logged and costs
only the in-progress read on other instances: the turn does not depend on it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace

from chat.engine.errors import ChatError
from chat.engine.history import Conversation, ResponseRecord
from chat.engine.items import FunctionCall, Item, Message
from chat.engine.model import ArgumentsDelta, ItemStarted, ModelEvent, TextDelta
from chat.engine.ports import RunStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    """A response still being answered: its record, its conversation, and its output so far."""

    record: ResponseRecord
    conversation_id: str
    outputs: tuple[Item, ...] = ()


@dataclass
class Progress:
    """One run's output items so far, grown from the model's events as they arrive."""

    conversation: Conversation
    record: ResponseRecord
    items: list[Item] = field(default_factory=list)
    written: asyncio.Task[None] | None = None
    recorded: bool = False  # the store has it: reads ask the store, which knows of deletes

    def add(self, event: ModelEvent) -> None:
        if isinstance(event, ItemStarted):
            self.items.append(event.item)
        elif isinstance(event, TextDelta | ArgumentsDelta):
            for index, item in enumerate(self.items):
                if item.id != event.item_id:
                    continue
                if isinstance(event, TextDelta) and isinstance(item, Message):
                    self.items[index] = replace(item, text=item.text + event.text)
                elif isinstance(event, ArgumentsDelta) and isinstance(item, FunctionCall):
                    self.items[index] = replace(item, arguments=item.arguments + event.delta)


class Runs:
    """The runs of this instance, and the store that tells other instances about them."""

    def __init__(self, store: RunStore | None = None) -> None:
        self._store = store
        self._live: dict[str, Progress] = {}

    def begin(self, conversation: Conversation, record: ResponseRecord, floor: int) -> Progress:
        progress = Progress(conversation, record)
        self._live[record.id] = progress
        if self._store is not None:
            progress.written = asyncio.create_task(self._begin(progress, floor))
        return progress

    async def recorded(self, progress: Progress) -> None:
        """Wait for the run's row: once its stream begins, every instance finds it."""
        if progress.written is not None:
            await progress.written

    async def end(self, progress: Progress, *, closed: bool = False) -> None:
        """The run's turn is stored, or will never be: it is no longer in progress. `closed`: the
        turn's own transaction closed its row (a stored turn), so nothing more is written."""
        self._live.pop(progress.record.id, None)
        if self._store is None or progress.written is None:
            return
        try:
            await progress.written
            if not closed:
                await self._store.end(progress.conversation, progress.record.id)
        except ChatError as e:
            log.warning("an in-progress response row was not removed: %s", e.code)

    async def find(self, owner: str, response_id: str) -> Run | None:
        """The owner's response still being answered, with what this instance has of its output.

        A run this instance streams is still read from the store when the store has it, so a
        conversation deleted on another instance takes its runs with it here too."""
        live = self._live.get(response_id)
        if live is not None and live.conversation.owner != owner:
            live = None
        if live is not None and not live.recorded:
            return Run(live.record, live.conversation.id, tuple(live.items))
        if self._store is None:
            return None
        found = await self._store.find(owner, response_id)
        if found is None:
            return None
        conversation, record = found
        return Run(record, conversation.id, tuple(live.items) if live is not None else ())

    async def _begin(self, progress: Progress, floor: int) -> None:
        assert self._store is not None
        try:
            await self._store.begin(progress.conversation, progress.record, floor)
        except ChatError as e:
            log.warning("an in-progress response row was not written: %s", e.code)
        else:
            progress.recorded = True
