"""The messages table as each of its stores uses it: the table client, the blob container of
turns too big for a transaction, the windows this worker keeps, and the reads they all share (a
conversation's head, a range of its rows, one turn, the row of an item, a response or an
Idempotency-Key).

The stores of the messages table build on it, one job each: history.py reads the window and
chains, turn_writes.py stores turns, items.py reads items and responses, deletes.py deletes;
messages.py puts them together. The rows themselves are codec.py's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from azure.data.tables import TableEntity
from azure.data.tables.aio import TableClient

from chat.engine.errors import ConversationNotFound
from chat.engine.history import Conversation, Head, response_partition
from chat.engine.items import Turn
from chat.storage import codec, keys
from chat.storage.blobs import TurnBlobs
from chat.storage.tables import Table, clash_ignored, get_entity_or_none, if_unchanged, range_rows, storage_errors
from chat.storage.windows import WINDOW_CACHE_TOKENS, WindowCache

QUERY_PAGE_ROWS = 32  # the first page of a read; each further page is twice the last
# A write conditional on the head (a delete, new metadata, an item deleted), against turns that keep winning.
MAX_HEAD_ATTEMPTS = 64


class MessagesTable:
    """The messages of every conversation, in the messages table: what its stores share."""

    def __init__(
        self, table: Table, *, blobs: TurnBlobs | None = None, window_cache_tokens: int = WINDOW_CACHE_TOKENS
    ) -> None:
        self.table = table
        self.client: TableClient = table.client
        self.blobs = blobs  # where a turn too big for one transaction goes (spill.py); None: refused
        self.windows = WindowCache(window_cache_tokens)

    async def close(self) -> None:
        await self.table.close()
        if self.blobs is not None:
            await self.blobs.close()

    async def read_head(self, conversation: Conversation) -> Head:
        """The head alone: a one-row query, since the head sorts first."""
        await self.table.ready()
        return await self.head_of(conversation.key)

    async def head_of(self, partition: str) -> Head:
        async for entity in range_rows(
            self.client,
            partition,
            keys.HEAD_ROW_KEY,
            keys.TURN_END,
            first_page=1,
            select=["RowKey", "n", "floor", "at", "meta", "items", "upd"],
        ):
            return codec.head_of_row(entity)
        return Head()

    async def find_turn(self, conversation: Conversation, number: int) -> Turn | None:
        """Turn `number`, if it is stored (whatever the floor)."""
        found = self.rows(conversation.key, keys.turn_prefix(number), keys.TURN_END)
        async for turn in codec.read_turns(codec.read_items(found, 0, self.blobs)):
            return turn if turn.number == number else None
        return None

    async def key_row(self, conversation: Conversation, idempotency_key: str) -> TableEntity | None:
        return await get_entity_or_none(self.client, conversation.key, keys.idempotency_row_key(idempotency_key))

    async def keyed_turn(
        self, conversation: Conversation, key_row: TableEntity | None, floor: int
    ) -> tuple[Turn, str] | None:
        """The turn an Idempotency-Key's row names, above `floor`, and its request's hash."""
        if key_row is None:
            return None
        if int(key_row["n"]) <= floor:
            # Left by a delete not finished yet: it would block this key's next turn (its row is
            # inserted, so that two requests with one key clash), so it goes now, unless a turn
            # replaced it since.
            with storage_errors(), clash_ignored():
                await self.client.delete_entity(
                    conversation.key, key_row["RowKey"], **if_unchanged(key_row.metadata["etag"])
                )
            return None
        turn = await self.find_turn(conversation, int(key_row["n"]))
        return (turn, key_row.get("req", "")) if turn else None

    async def from_head(
        self, partition: str, *, head_first: bool = False, until: str | None = None
    ) -> tuple[Head, AsyncIterator[TableEntity]]:
        """The head, and the message rows after it, newest first: one query from RowKey `t`.
        `head_first` asks for the head alone in the first page (a reader that may need no more),
        and goes on from the second as a whole read does. `until` bounds the query's range at a
        RowKey the reader expects not to need (the rows of older turns), and a second query reads
        on from there only if the reader does: a range that holds what it reads, not the whole
        conversation, is what a range query sorts and pages through."""
        end = until or keys.TURN_END
        if head_first:
            found = range_rows(
                self.client, partition, keys.HEAD_ROW_KEY, end, first_page=1, second_page=QUERY_PAGE_ROWS
            )
        else:
            found = self.rows(partition, keys.HEAD_ROW_KEY, end)
        if until is not None:
            found = _then(found, lambda: self.rows(partition, until, keys.TURN_END))
        first = await anext(found, None)
        if first is None:
            return Head(), found
        if first["RowKey"] == keys.HEAD_ROW_KEY:
            return codec.head_of_row(first), found
        return codec.head_of_row(first), _prepend(first, found)

    def rows(self, partition: str, start: str, end: str) -> AsyncIterator[TableEntity]:
        """Rows from RowKey `start` up to `end`, in pages that double in size from QUERY_PAGE_ROWS:
        a read that stops early (a small window) fetches one small page, and a long one reads at most
        about twice the rows it uses."""
        return range_rows(self.client, partition, start, end, first_page=QUERY_PAGE_ROWS)

    async def index_row(self, conversation: Conversation, item_id: str) -> tuple[Head, TableEntity | None]:
        """The head, and the item's index row if it points above the floor. ConversationNotFound
        if the conversation does not exist."""
        await self.table.ready()
        head, index = await asyncio.gather(
            self.read_head(conversation),
            get_entity_or_none(self.client, conversation.key, keys.item_index_row_key(item_id)),
        )
        if not head.exists:
            raise ConversationNotFound()
        if index is None or int(index["n"]) <= head.floor:
            return head, None
        return head, index

    async def response_row(self, owner: str, response_id: str) -> tuple[Conversation, TableEntity] | None:
        """A stored response's row and its conversation, if the owner has it above the floor."""
        partition = response_partition(response_id)
        if partition is None:
            return None
        await self.table.ready()
        row, head = await asyncio.gather(
            get_entity_or_none(self.client, partition, keys.response_row_key(response_id)),
            self.head_of(partition),
        )
        # The ID names a partition; the row says whose conversation it is, so another owner's is not
        # found; and a response of turns a delete has raised the floor over is gone with them.
        if row is None or Conversation(owner, row["conv"]).key != partition or int(row["n"]) <= head.floor:
            return None
        return Conversation(owner, row["conv"]), row

    async def forget_blob(self, blob: str | None) -> None:
        """A turn's blob that no committed row names (its transaction was refused, or replaced)."""
        if blob is not None and self.blobs is not None:
            await self.blobs.forget(blob)


async def _prepend(first: TableEntity, rest: AsyncIterator[TableEntity]) -> AsyncIterator[TableEntity]:
    yield first
    async for row in rest:
        yield row


async def _then(
    first: AsyncIterator[TableEntity], rest: Callable[[], AsyncIterator[TableEntity]]
) -> AsyncIterator[TableEntity]:
    """The rows of `first`, then those of `rest`, whose query is sent only if they are read."""
    async for row in first:
        yield row
    async for row in rest():
        yield row
