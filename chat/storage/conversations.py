"""The owner's conversation list, newest activity first, in the conversations table.

Each conversation has a record (`c{hash}`) and one row in the activity order
(`a{inverted time}{hash}`), kept in step in one transaction of the owner's partition under the
record's ETag; see keys.py and docs/storage.md.

A record carries the floor of the conversation it lists (the head's floor when its turn read it:
0 until the ID is first deleted). Deleting leaves a tombstone record with the new floor and no
activity row, so a turn still in flight from before the delete, whose floor is lower, can neither
bring the entry back nor its title; a turn of the conversation started afresh since has a floor
at least the tombstone's and lists it anew.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from azure.data.tables import TableEntity, UpdateMode

from chat.engine.errors import StorageUnavailable
from chat.engine.history import Conversation, ConversationSummary, Page
from chat.storage import keys
from chat.storage.tables import (
    Operation,
    Table,
    change_under_etag,
    decode_cursor,
    encode_cursor,
    get_entity_or_none,
    range_rows,
    replace_or_create,
)

TITLE_CHARS = 80
ATTEMPTS = 20


class ConversationList:
    def __init__(self, table: Table) -> None:
        self._table = table

    async def record_activity(
        self,
        conversation: Conversation,
        *,
        floor: int,
        first_message: str,
        at: str,
        message_count: int,
        retitle: bool = False,
    ) -> None:
        """Keep the owner's list in activity order: one record and one index row per conversation.

        Concurrent updates are serialized by the record's ETag; counts and times only grow, and an
        update that would change nothing is skipped, so racing turns settle quickly. The title is
        `first_message` of the call that creates the record, or of a call that says `retitle`
        (it knows `first_message` opened the conversation). `floor` is the head's floor the turn
        read: a record or tombstone with a higher one means the turn's conversation was deleted,
        and nothing is written.
        """
        partition = keys.owner_partition(conversation.owner)
        chash = conversation.key

        def change(record: TableEntity | None) -> list[Operation]:
            if record is not None and floor < _floor(record):
                return []
            if record is None or record.get("deleted") or floor > _floor(record):
                # Listed for the first time since the conversation was (re)started.
                summary: dict[str, Any] = {
                    "id": conversation.id,
                    "title": _title(first_message),
                    "created": at,
                    "updated": at,
                    "count": message_count,
                }
            else:
                title = _title(first_message) if retitle else record["title"]
                if int(record["count"]) >= message_count and record["updated"] >= at and record["title"] == title:
                    return []
                summary = {
                    "id": record["id"],
                    "title": title,
                    "created": record["created"],
                    "updated": max(record["updated"], at),
                    "count": max(int(record["count"]), message_count),
                }
            index_key = keys.activity_row_key(_millis(summary["updated"]), chash)
            entity = {
                "PartitionKey": partition,
                "RowKey": keys.record_row_key(chash),
                "idx": index_key,
                "floor": floor,
                **summary,
            }
            index = {"PartitionKey": partition, "RowKey": index_key, **summary}
            if record is None:
                return [("create", entity), ("create", index)]
            operations = [replace_or_create(entity, record.metadata["etag"])]
            if record.get("idx") and index_key != record["idx"]:
                operations.append(("delete", {"PartitionKey": partition, "RowKey": record["idx"]}))
            operations.append(("upsert", index, {"mode": UpdateMode.REPLACE}))
            return operations

        await self._update_record(conversation, change)

    async def list_conversations(self, owner: str, limit: int, cursor: str | None) -> Page[ConversationSummary]:
        client = await self._table.ready()
        start = decode_cursor(cursor, keys.is_activity_row_key) if cursor else keys.ACTIVITY_PREFIX
        items: list[ConversationSummary] = []
        next_cursor = None
        # One row past the page tells whether another page follows.
        rows = range_rows(client, keys.owner_partition(owner), start, keys.ACTIVITY_END, first_page=limit + 1)
        async for entity in rows:
            if len(items) == limit:
                next_cursor = encode_cursor(entity["RowKey"])
                break
            items.append(
                ConversationSummary(
                    id=entity["id"],
                    title=entity["title"],
                    created_at=entity["created"],
                    updated_at=entity["updated"],
                    message_count=int(entity["count"]),
                )
            )
        return Page(items=items, next_cursor=next_cursor)

    async def forget(self, conversation: Conversation, floor: int) -> None:
        """Unlist the conversation deleted through `floor`: its record becomes a tombstone holding
        the floor, and its place in the order goes. Idempotent.

        A record with a floor at least as high lists the conversation started afresh since (or a
        later delete's tombstone), and stays.
        """
        partition = keys.owner_partition(conversation.owner)
        tombstone = {
            "PartitionKey": partition,
            "RowKey": keys.record_row_key(conversation.key),
            "floor": floor,
            "deleted": True,
        }

        def change(record: TableEntity | None) -> list[Operation]:
            if record is None:
                return [("create", tombstone)]
            if _floor(record) >= floor:
                return []
            operations = [replace_or_create(tombstone, record.metadata["etag"])]
            if record.get("idx"):
                operations.append(("delete", {"PartitionKey": partition, "RowKey": record["idx"]}))
            return operations

        await self._update_record(conversation, change)

    async def _update_record(
        self, conversation: Conversation, change: Callable[[TableEntity | None], list[Operation]]
    ) -> None:
        """Write what `change` makes of the conversation's record (None if it has none), in one
        transaction of the owner's partition under the record's ETag, retried on a clash."""
        client = await self._table.ready()
        partition = keys.owner_partition(conversation.owner)
        record_key = keys.record_row_key(conversation.key)
        await change_under_etag(
            client,
            lambda: get_entity_or_none(client, partition, record_key),
            change,
            attempts=ATTEMPTS,
            busy=StorageUnavailable("The conversation list is too busy to update; try again."),
        )


def _floor(record: Mapping[str, Any]) -> int:
    # Records written before floors existed list a conversation never deleted.
    return int(record.get("floor", 0))


def _title(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


def _millis(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)
