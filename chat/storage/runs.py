"""Responses still being answered, in the messages table: what a read on any instance finds
before the response's turn is stored (chat.engine.ports.RunStore).

    p{response ID}      in the conversation's partition: `conv` its conversation ID, `floor`
                        the conversation's floor when the answer began, `since` when (epoch
                        seconds), and the door's record of the response (text parts `c00`...)

The row is written when a streamed answer begins; the transaction that stores its turn replaces
it with a closed mark (`done`, nothing else: codec.turn_entities), and a turn that failed deletes
it. It is only read when no response row (`r{ID}`) exists, so one whose delete was lost is never
shown over the stored response. A row left behind by an instance that stopped mid-answer is
shown for STALE_SECONDS at most. A delete of the conversation removes the row with the turns (it
has no turn number), and a row written after the delete names a floor the head has passed.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress

from azure.core.exceptions import ResourceNotFoundError

from chat.engine.history import Conversation, ResponseRecord, response_partition
from chat.storage import keys
from chat.storage.limits import PARTS_PER_ROW, split_text
from chat.storage.tables import Table, clash_ignored, get_entity_or_none, storage_errors

# Longer than any answer streams: Functions stops an HTTP invocation after at most 10 minutes on
# the Consumption plan, and the stream's drain ends with it.
STALE_SECONDS = 15 * 60


class RunStore:
    """The in-progress rows of the OpenAI-compatible door's streamed responses."""

    def __init__(self, table: Table) -> None:
        self._table = table
        self._messages = table.client

    async def begin(self, conversation: Conversation, record: ResponseRecord, floor: int) -> None:
        parts = split_text(record.data)
        if len(parts) > PARTS_PER_ROW:
            return  # a record this large cannot be stored with its turn either: the turn says so
        entity = {
            "PartitionKey": conversation.key,
            "RowKey": keys.run_row_key(record.id),
            "conv": conversation.id,
            "floor": floor,
            "since": int(time.time()),
            **{f"c{i:02d}": part for i, part in enumerate(parts)},
        }
        await self._table.ready()
        with storage_errors(), clash_ignored():  # the same begin sent twice (transport.py)
            await self._messages.create_entity(entity)

    async def end(self, conversation: Conversation, response_id: str) -> None:
        await self._table.ready()
        with storage_errors(), suppress(ResourceNotFoundError):
            await self._messages.delete_entity(conversation.key, keys.run_row_key(response_id))

    async def find(self, owner: str, response_id: str) -> tuple[Conversation, ResponseRecord] | None:
        """The response of this owner still being answered, as recorded when it began, or None."""
        partition = response_partition(response_id)
        if partition is None:
            return None
        await self._table.ready()
        row, head = await asyncio.gather(
            get_entity_or_none(self._messages, partition, keys.run_row_key(response_id)),
            get_entity_or_none(self._messages, partition, keys.HEAD_ROW_KEY),
        )
        if row is None or row.get("done"):
            return None
        conversation = Conversation(owner, row["conv"])
        floor = int(head.get("floor", 0)) if head is not None else 0
        if conversation.key != partition or floor > int(row["floor"]):
            return None  # another owner's, or its conversation was deleted since
        if time.time() - int(row["since"]) > STALE_SECONDS:
            return None
        data = "".join(row[f"c{i:02d}"] for i in range(PARTS_PER_ROW) if f"c{i:02d}" in row)
        return conversation, ResponseRecord(response_id, data)
