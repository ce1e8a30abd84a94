"""Deleting from the messages table: a conversation (its floor raised under the head's ETag, then
its rows below the floor removed), one item (its rows, counted out of the head), and a response.

A delete wins over the turns in flight: once the floor is up, a turn that read the head before
fails its transaction, and nothing at or below the floor is read again. docs/storage.md,
"Deleting, and turns in flight", tells the whole protocol.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableEntity, TableTransactionError, UpdateMode

from chat.engine.errors import ConversationBusy
from chat.engine.history import Conversation, Head
from chat.storage import codec, keys, spill
from chat.storage.blobs import TurnBlobs
from chat.storage.limits import PARTS_PER_ROW
from chat.storage.message_table import MAX_HEAD_ATTEMPTS, MessagesTable
from chat.storage.tables import (
    Operation,
    change_under_etag,
    get_entity_or_none,
    if_unchanged,
    is_clash,
    range_rows,
    replace_or_create,
    storage_errors,
)


@dataclass(frozen=True)
class _ItemDelete:
    """The transaction that deletes one item, and the blobs it retires and names."""

    operations: list[Operation]
    old_blob: str | None = None  # the spilled turn's blob the transaction stops naming
    new_blob: str | None = None  # the spilled turn's blob without the item, written for the transaction


class TurnDeletes(MessagesTable):
    """Conversations, items and responses deleted."""

    async def raise_floor(self, conversation: Conversation) -> int:
        """Mark every turn so far deleted, and fail every turn in flight; the new floor.

        The floor moves to one past the newest turn number (so every delete raises it, even one
        repeated with no turn between), under the head's ETag. A turn that read the head before
        fails its transaction from this moment; rows at or below the floor are no longer read.
        """
        await self.table.ready()
        partition = conversation.key
        self.windows.forget(partition)

        def raised(head: Head) -> list[Any]:
            floor = head.latest_turn + 1
            return [replace_or_create(codec.head_entity(partition, floor, floor), head.etag)]

        head = await change_under_etag(
            self.client,
            lambda: self.read_head(conversation),
            raised,
            attempts=MAX_HEAD_ATTEMPTS,
            busy=ConversationBusy("Too many turns at once on this conversation; try the delete again."),
        )
        return head.latest_turn + 1

    async def delete_turns(self, conversation: Conversation, floor: int) -> None:
        """Remove the rows of every turn at or below `floor`, in transactions of 100. Idempotent.

        The head stays, holding the floor, so turn numbers are never reused; rows of turns stored
        since the floor was raised stay too.
        """
        await self.table.ready()
        partition = conversation.key
        with storage_errors():
            batch: list[tuple[str, dict[str, str]]] = []
            async for entity in self.client.query_entities(
                "PartitionKey eq @pk",
                parameters={"pk": partition},
                select=["RowKey", "n", spill.BLOB_PROPERTY],
                results_per_page=1000,
            ):
                if _kept_by_delete(entity, floor):
                    continue
                blob = entity.get(spill.BLOB_PROPERTY)
                if blob is not None and self.blobs is not None:
                    # Before its row: a turn below the floor is never read, and its blob goes for good.
                    await self.blobs.delete(blob)
                batch.append(("delete", {"PartitionKey": partition, "RowKey": entity["RowKey"]}))
                if len(batch) == 100:
                    await self._submit_deletes(batch)
                    batch = []
            if batch:
                await self._submit_deletes(batch)

    async def _submit_deletes(self, batch: list[tuple[str, dict[str, str]]]) -> None:
        try:
            await self.client.submit_transaction(batch)
        except TableTransactionError as e:
            if not is_clash(e):
                raise
            # A concurrent delete removed some rows first: delete the rest one by one.
            for _, entity in batch:
                await self.client.delete_entity(entity["PartitionKey"], entity["RowKey"])

    async def delete_item(self, conversation: Conversation, item_id: str) -> bool:
        """Remove one item's rows, in one transaction that marks its index row gone (it keeps the
        item's place, for a page that goes on after it) and counts it out of the head, under the
        head's ETag. False if there is no such item."""
        self.windows.forget(conversation.key)
        lost: list[str] = []  # a blob written for an attempt, until the attempt is known to have won

        async def read() -> _ItemDelete | None:
            # Read again only after a clash: the blob of the attempt that lost is named by nothing.
            while lost:
                await self.forget_blob(lost.pop())
            plan = await self._item_delete(conversation, item_id)
            if plan is not None and plan.new_blob is not None:
                lost.append(plan.new_blob)
            return plan

        try:
            plan = await change_under_etag(
                self.client,
                read,
                lambda plan: plan.operations if plan is not None else [],
                attempts=MAX_HEAD_ATTEMPTS,
                busy=ConversationBusy("Too many changes at once on this conversation; try the delete again."),
            )
        except ConversationBusy:
            while lost:
                await self.forget_blob(lost.pop())
            raise
        if plan is None:
            return False
        await self.forget_blob(plan.old_blob)
        return True

    async def _item_delete(self, conversation: Conversation, item_id: str) -> _ItemDelete | None:
        """The transaction that deletes the item as the head and its index row are now, or None if
        there is no such item."""
        partition = conversation.key
        head, index = await self.index_row(conversation, item_id)
        if index is None or index.get("gone"):
            return None
        number, place = int(index["n"]), int(index["i"])
        operations: list[Operation] = [
            replace_or_create(_counted_out(partition, head), head.etag),
            (
                "update",
                {"PartitionKey": partition, "RowKey": index["RowKey"], "n": number, "i": place, "gone": True},
                {"mode": UpdateMode.REPLACE, **if_unchanged(index.metadata["etag"])},
            ),
        ]
        async for row in range_rows(
            self.client,
            partition,
            keys.item_start_key(number, place),
            keys.after_item_key(number, place),
            first_page=PARTS_PER_ROW,
            select=["RowKey"],
        ):
            operations.append(("delete", {"PartitionKey": partition, "RowKey": row["RowKey"]}))
        if len(operations) > 2:
            return _ItemDelete(operations)
        # No rows of its own: the item is in its turn's blob, or was never stored.
        spilled = await get_entity_or_none(self.client, partition, spill.spill_row_key(number))
        if spilled is None:
            return None
        change, new_blob = await self._without_item(spilled, number, place)
        if change is None:
            return None
        return _ItemDelete([*operations, change], spilled[spill.BLOB_PROPERTY], new_blob)

    async def _without_item(self, spilled: TableEntity, number: int, place: int) -> tuple[Any, str | None]:
        """The change to a spilled turn's row that takes one item out: its rows without the item's,
        in a new blob (written here), or the row deleted when none are left; under the row's ETag.
        (None, None) when the blob holds no such item."""
        assert self.blobs is not None  # a spill row is only read with them (_load)
        partition = spilled["PartitionKey"]
        rows = spill.decode(partition, await codec.load_blob(self.blobs, spilled[spill.BLOB_PROPERTY]))
        prefix = keys.item_start_key(number, place)
        kept = [row for row in rows if not row["RowKey"].startswith(prefix)]
        if len(kept) == len(rows):
            return None, None
        condition = if_unchanged(spilled.metadata["etag"])
        if not kept:
            return ("delete", {"PartitionKey": partition, "RowKey": spilled["RowKey"]}, condition), None
        name = TurnBlobs.new_name(partition, number)
        await self.blobs.put(name, spill.encode(kept))
        return ("update", spill.spill_row(partition, number, name), {"mode": UpdateMode.REPLACE, **condition}), name

    async def delete_response(self, owner: str, response_id: str) -> bool:
        """Forget a stored response (its turn stays, as the context of what continued it)."""
        found = await self.response_row(owner, response_id)
        if found is None:
            return False
        conversation, row = found
        with storage_errors(), suppress(ResourceNotFoundError):
            await self.client.delete_entity(conversation.key, row["RowKey"])
        with storage_errors(), suppress(ResourceNotFoundError):  # its closed in-progress mark, if streamed
            await self.client.delete_entity(conversation.key, keys.run_row_key(response_id))
        return True


def _counted_out(partition: str, head: Head) -> dict[str, Any]:
    """The head with one item fewer."""
    return codec.head_entity(
        partition,
        head.latest_turn,
        head.floor,
        head.created_at,
        head.metadata,
        max(0, head.item_count - 1),
        head.updated_at,
    )


def _kept_by_delete(entity: dict[str, Any], floor: int) -> bool:
    """Whether a delete through `floor` keeps this row: the head, and rows of later turns."""
    key = entity["RowKey"]
    if key == keys.HEAD_ROW_KEY:
        return True
    if key.startswith(keys.TURN_PREFIX):
        return keys.parse_item_row_key(key)[0] > floor
    # The rows that point at a turn (idempotency keys, item indexes, responses) go with it.
    return "n" in entity and int(entity["n"]) > floor
