"""The owner's conversation list, newest activity first, in the conversations table.

Each conversation has a record (`c{hash}`) and one row in the activity order
(`a{inverted time}{hash}`), kept in step in one transaction of the owner's partition under the
record's ETag; see keys.py and docs/storage.md.

The list lags its conversations by at most LIST_LAG_SECONDS, and is put right as it is read. A
continuing turn leaves the list as it is when this worker listed the conversation less than that
long before the turn (so the turn's storage is its read and its one transaction); its head holds
the turn's time and count. A page of the list (list_pages.py) reads the head of every entry it
considers, shows the head's time and count, and orders by them.

A record carries the floor of the conversation it lists (the head's floor when its turn read it:
0 until the ID is first deleted). Deleting leaves a tombstone record with the new floor and no
activity row, so a turn still in flight from before the delete, whose floor is lower, can neither
bring the entry back nor its title; a turn of the conversation started afresh since has a floor
at least the tombstone's and lists it anew.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from azure.data.tables import TableEntity, UpdateMode

from chat.engine.errors import StorageUnavailable
from chat.engine.history import Conversation, ConversationSummary, Page
from chat.storage import keys
from chat.storage.activity import LAG_MICROS, UNCONFIRMED, floor_of, micros
from chat.storage.list_pages import HeadReader, ListPages
from chat.storage.tables import (
    Operation,
    Table,
    change_under_etag,
    get_entity_or_none,
    if_unchanged,
    replace_or_create,
)

TITLE_CHARS = 80
SUMMARY_FIELDS = ("id", "title", "created", "updated", "count")
ATTEMPTS = 20
KNOWN_RECORDS = 4096  # records whose ETag this worker last wrote, kept to update them without a read


class _Known(dict[str, Any]):
    """A record as this worker last wrote it, with the ETag the service answered: read from the
    cache in place of a TableEntity read from the table."""

    def __init__(self, entity: Mapping[str, Any], etag: str) -> None:
        super().__init__(entity)
        self.metadata = {"etag": etag}


class _Records:
    """The conversations' records, each written under its ETag, in one transaction of the owner's
    partition with its activity row. The records this worker last wrote are remembered with the
    ETag the service answered, so that the next update of one is the write alone: a record another
    writer changed since makes that write clash, and it is read as if nothing had been remembered."""

    def __init__(self, table: Table) -> None:
        self._table = table
        self._known: OrderedDict[str, _Known] = OrderedDict()

    def forget(self, conversation: Conversation) -> None:
        """Read the record afresh on its next update."""
        self._known.pop(_cache_key(conversation), None)

    def known(self, conversation: Conversation) -> Mapping[str, Any] | None:
        """The record as this worker last wrote it, if it remembers it."""
        return self._known.get(_cache_key(conversation))

    async def update(self, conversation: Conversation, change: Callable[[TableEntity | None], list[Operation]]) -> None:
        """Write what `change` makes of the conversation's record (None if it has none), in one
        transaction of the owner's partition under the record's ETag, retried on a clash."""
        client = await self._table.ready()
        partition = keys.owner_partition(conversation.owner)
        record_key = keys.record_row_key(conversation.key)
        cache_key = _cache_key(conversation)
        known = self._known.pop(cache_key, None)

        def remember(operations: Sequence[Operation], results: Sequence[Any]) -> None:
            # The record is the first operation of every write `change` makes.
            kind, entity, *_ = operations[0]
            etag = (results[0] or {}).get("etag") if kind != "delete" else None
            if entity.get("RowKey") == record_key and etag:
                self._known[cache_key] = _Known(entity, etag)
                while len(self._known) > KNOWN_RECORDS:
                    self._known.popitem(last=False)

        # Read as the table's entities are: a mapping with the ETag in `metadata`.
        remembered = cast(TableEntity | None, known)

        async def read() -> TableEntity | None:
            return await get_entity_or_none(client, partition, record_key)

        await change_under_etag(
            client,
            read,  # type: ignore[arg-type]  # the state may be None (no record); `seen` None is "not read"
            change,
            attempts=ATTEMPTS,
            busy=StorageUnavailable("The conversation list is too busy to update; try again."),
            seen=remembered,
            written=remember,
        )


class ConversationIndex:
    """The list. A continuing turn's update would be a read of the record and a write under its
    ETag; the records this worker last wrote are remembered with their ETags (_Records), and one
    listed less than LIST_LAG_SECONDS before the turn is not updated at all. `heads` reads a
    conversation's head (the messages table's), which a page of the list shows."""

    def __init__(self, table: Table, heads: HeadReader) -> None:
        self._table = table
        self._records = _Records(table)
        self._pages = ListPages(table, heads)

    async def record_activity(
        self,
        conversation: Conversation,
        *,
        floor: int,
        first_message: str,
        at: str,
        message_count: int,
        retitle: bool = False,
        ahead: bool = False,
    ) -> None:
        """Keep the owner's list in activity order: one record and one index row per conversation.

        Concurrent updates are serialized by the record's ETag; counts and times only grow, and an
        update that would change nothing is skipped, so racing turns settle quickly. The title is
        `first_message` of the call that creates the record, or of a call that says `retitle`
        (it knows `first_message` opened the conversation). `floor` is the head's floor the turn
        read: a record or tombstone with a higher one means the turn's conversation was deleted,
        and nothing is written.

        `ahead` says the turn is not stored yet: an entry this call creates is marked unconfirmed
        (a reader checks the conversation's head before it shows it), and one that exists keeps
        its mark. A call without `ahead` confirms the entry.
        """
        if not (ahead or retitle) and self._listed_lately(conversation, floor, at):
            return
        partition = keys.owner_partition(conversation.owner)
        chash = conversation.key

        def change(record: TableEntity | None) -> list[Operation]:
            if record is not None and floor < floor_of(record):
                return []
            if ahead and record is not None and not record.get("deleted") and floor == floor_of(record):
                # Listed already (by a racing first turn): the update after the turn's write will do.
                return []
            summary: dict[str, Any]
            if record is None or record.get("deleted") or floor > floor_of(record):
                # Listed for the first time since the conversation was (re)started.
                summary = {
                    "id": conversation.id,
                    "title": _title(first_message),
                    "created": at,
                    "updated": at,
                    "count": message_count,
                    **({UNCONFIRMED: int(time.time())} if ahead else {}),
                }
            else:
                title = _title(first_message) if retitle else record["title"]
                mark = record.get(UNCONFIRMED) if ahead else None
                if (
                    int(record["count"]) >= message_count
                    and record["updated"] >= at
                    and record["title"] == title
                    and record.get(UNCONFIRMED) == mark
                ):
                    return []
                summary = {
                    "id": record["id"],
                    "title": title,
                    "created": record["created"],
                    "updated": max(record["updated"], at),
                    "count": max(int(record["count"]), message_count),
                    **({UNCONFIRMED: mark} if mark is not None else {}),
                }
            return _listing(partition, chash, floor, summary, record)

        await self._records.update(conversation, change)

    def _listed_lately(self, conversation: Conversation, floor: int, at: str) -> bool:
        """Whether this worker listed the conversation, confirmed and under `floor`, less than
        LIST_LAG_SECONDS before `at`: the entry may then stay as it is (its head shows the turn).
        Another worker's update since only moved the entry later, and one that failed is not
        remembered, so the entry is never ordered more than the lag before its newest turn."""
        known = self._records.known(conversation)
        return (
            known is not None
            and not known.get("deleted")
            and known.get(UNCONFIRMED) is None
            and floor_of(known) == floor
            and micros(at) - micros(known["updated"]) < LAG_MICROS
        )

    async def mark_unconfirmed(self, conversation: Conversation) -> None:
        """Mark the conversation's entry unconfirmed, before a delete: if the delete is cut short
        before it unlists the conversation, a reader checks the head and does not show it."""
        partition = keys.owner_partition(conversation.owner)

        def change(record: TableEntity | None) -> list[Operation]:
            if record is None or record.get("deleted") or record.get(UNCONFIRMED) is not None:
                return []
            summary = {name: record[name] for name in SUMMARY_FIELDS} | {UNCONFIRMED: int(time.time())}
            return _listing(partition, conversation.key, floor_of(record), summary, record)

        await self._records.update(conversation, change)

    async def confirm(self, conversation: Conversation, floor: int) -> None:
        """Take the unconfirmed mark off the entry written under `floor`: its head shows it exists."""
        partition = keys.owner_partition(conversation.owner)

        def change(record: TableEntity | None) -> list[Operation]:
            if record is None or not _unconfirmed_under(record, floor):
                return []
            summary = {name: record[name] for name in SUMMARY_FIELDS}
            return _listing(partition, conversation.key, floor, summary, record)

        await self._records.update(conversation, change)

    async def discard(self, conversation: Conversation, floor: int) -> None:
        """Remove the unconfirmed entry written under `floor` for a first turn that was never stored."""
        partition = keys.owner_partition(conversation.owner)

        def change(record: TableEntity | None) -> list[Operation]:
            if record is None or not _unconfirmed_under(record, floor):
                return []
            operations: list[Operation] = [("delete", record, if_unchanged(record.metadata["etag"]))]
            if record.get("idx"):
                operations.append(("delete", {"PartitionKey": partition, "RowKey": record["idx"]}))
            return operations

        await self._records.update(conversation, change)

    async def recount(self, conversation: Conversation, *, floor: int, message_count: int) -> None:
        """List the conversation with `message_count` items, the count its head holds now that an
        item has left it: the one update that lowers a count. Read afresh (a record this worker
        wrote may have changed since on another), and written under the record's ETag with its
        activity row. Nothing is written for a conversation not listed, deleted, or listed with
        another floor than `floor`, the head's."""
        partition = keys.owner_partition(conversation.owner)
        self._records.forget(conversation)

        def change(record: TableEntity | None) -> list[Operation]:
            if record is None or record.get("deleted") or floor_of(record) != floor or not record.get("idx"):
                return []
            if int(record["count"]) == message_count:
                return []
            summary = {name: record[name] for name in SUMMARY_FIELDS} | {"count": message_count}
            if record.get(UNCONFIRMED) is not None:
                summary[UNCONFIRMED] = record[UNCONFIRMED]
            return _listing(partition, conversation.key, floor, summary, record)

        await self._records.update(conversation, change)

    async def list_conversations(self, owner: str, limit: int, cursor: str | None) -> Page[ConversationSummary]:
        """A page of the owner's list in the order of the times shown (list_pages.py)."""
        return await self._pages.page(owner, limit, cursor)

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
            if floor_of(record) >= floor:
                return []
            operations = [replace_or_create(tombstone, record.metadata["etag"])]
            if record.get("idx"):
                operations.append(("delete", {"PartitionKey": partition, "RowKey": record["idx"]}))
            return operations

        await self._records.update(conversation, change)


def _listing(
    partition: str, chash: str, floor: int, summary: Mapping[str, Any], record: TableEntity | None
) -> list[Operation]:
    """The write that lists `summary`: the record and its index row (which carries the summary
    too, so a page of the list is one range read), replacing what `record` listed."""
    index_key = keys.activity_row_key(micros(summary["updated"]), chash)
    entity = {
        "PartitionKey": partition,
        "RowKey": keys.record_row_key(chash),
        "idx": index_key,
        "floor": floor,
        **summary,
    }
    index = {"PartitionKey": partition, "RowKey": index_key, "floor": floor, **summary}
    if record is None:
        return [("create", entity), ("create", index)]
    operations = [replace_or_create(entity, record.metadata["etag"])]
    if record.get("idx") and index_key != record["idx"]:
        operations.append(("delete", {"PartitionKey": partition, "RowKey": record["idx"]}))
    operations.append(("upsert", index, {"mode": UpdateMode.REPLACE}))
    return operations


def _unconfirmed_under(record: Mapping[str, Any], floor: int) -> bool:
    """Whether `record` is a listed entry, marked unconfirmed, written under `floor`."""
    return not record.get("deleted") and record.get(UNCONFIRMED) is not None and floor_of(record) == floor


def _title(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


def _cache_key(conversation: Conversation) -> str:
    return keys.owner_partition(conversation.owner) + keys.record_row_key(conversation.key)
