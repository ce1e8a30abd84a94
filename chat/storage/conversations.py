"""The owner's conversation list, newest activity first, in the conversations table.

Each conversation has a record (`c{hash}`) and one row in the activity order
(`a{inverted time}{hash}`), kept in step in one transaction of the owner's partition under the
record's ETag; see keys.py and docs/storage.md.

The list lags its conversations by at most LIST_LAG_SECONDS, and is put right as it is read. A
continuing turn leaves the list as it is when this worker listed the conversation less than that
long before the turn (so the turn's storage is its read and its one transaction); its head holds
the turn's time and count. A page of the list reads the head of every entry it considers, shows
the head's time and count, and orders by them: an entry's true time is at most LIST_LAG_SECONDS
after the time its row is ordered by, so reading on until the rows are that much older than the
page's last entry finds every entry that belongs on the page.

A record carries the floor of the conversation it lists (the head's floor when its turn read it:
0 until the ID is first deleted). Deleting leaves a tombstone record with the new floor and no
activity row, so a turn still in flight from before the delete, whose floor is lower, can neither
bring the entry back nor its title; a turn of the conversation started afresh since has a floor
at least the tombstone's and lists it anew.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from azure.data.tables import TableEntity, UpdateMode

from chat.engine.errors import StorageUnavailable
from chat.engine.history import Conversation, ConversationSummary, Head, Page
from chat.storage import keys
from chat.storage.tables import (
    Operation,
    Table,
    change_under_etag,
    decode_cursor,
    encode_cursor,
    get_entity_or_none,
    if_unchanged,
    range_rows,
    replace_or_create,
)

TITLE_CHARS = 80
SUMMARY_FIELDS = ("id", "title", "created", "updated", "count")
UNCONFIRMED = "unconfirmed"  # on an entry written ahead of what it lists: Unix seconds of that write
ATTEMPTS = 20
KNOWN_RECORDS = 4096  # records whose ETag this worker last wrote, kept to update them without a read
# A continuing turn updates the list when this worker listed its conversation longer ago than this.
LIST_LAG_SECONDS = 300
LAG_MICROS = LIST_LAG_SECONDS * 1_000_000
# A page reads at most this many rows beyond its size for entries listed late (an owner with more
# conversations active within LIST_LAG_SECONDS of each other sees them in the order they were listed).
MAX_EXTRA_ROWS = 200

HeadReader = Callable[[Conversation], Awaitable[Head]]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
        self._heads = heads

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
            if record is not None and floor < _floor(record):
                return []
            if ahead and record is not None and not record.get("deleted") and floor == _floor(record):
                # Listed already (by a racing first turn): the update after the turn's write will do.
                return []
            summary: dict[str, Any]
            if record is None or record.get("deleted") or floor > _floor(record):
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
            and _floor(known) == floor
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
            return _listing(partition, conversation.key, _floor(record), summary, record)

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
            if record is None or record.get("deleted") or _floor(record) != floor or not record.get("idx"):
                return []
            if int(record["count"]) == message_count:
                return []
            summary = {name: record[name] for name in SUMMARY_FIELDS} | {"count": message_count}
            if record.get(UNCONFIRMED) is not None:
                summary[UNCONFIRMED] = record[UNCONFIRMED]
            return _listing(partition, conversation.key, floor, summary, record)

        await self._records.update(conversation, change)

    async def list_conversations(self, owner: str, limit: int, cursor: str | None) -> Page[ConversationSummary]:
        """A page of the owner's list in the order of the times shown (the heads'), each entry with
        the head it was read with; the cursor is the activity key of the next page's first entry.

        A page that would read more than MAX_EXTRA_ROWS rows beyond its size goes on in the order
        the entries were listed instead (its cursor says so, and where that order resumes), so
        an owner with that many conversations active within the lag of each other sees every one
        of them, once, if not all in the order of their times."""
        client = await self._table.ready()
        after, listed_from = _position(cursor)
        partition = keys.owner_partition(owner)
        if listed_from is not None:
            return await self._listed_order(owner, limit, after, listed_from)
        # Every entry at or after the cursor was listed at or before the cursor's time.
        start = after[: len(after) - 64] if after else keys.ACTIVITY_PREFIX
        rows = range_rows(client, partition, start, keys.ACTIVITY_END, first_page=limit + 1)
        found: list[tuple[str, ConversationSummary]] = []
        scanned: list[TableEntity] = []
        more = False
        async for chunk in _chunks(rows, limit + 1):
            for key, entry in await self._shown(owner, chunk):
                if after is None or key >= after:
                    found.append((key, entry))
            found.sort(key=lambda pair: pair[0])
            scanned += chunk
            more = len(chunk) == limit + 1
            if not more:
                break
            if len(found) > limit and micros(chunk[-1]["updated"]) + LAG_MICROS <= _micros_of_key(found[limit][0]):
                break  # every row on is listed so long before the last entry kept that it shows later
            if len(scanned) >= limit + 1 + MAX_EXTRA_ROWS:
                # Too many listed within the lag of each other: this page and those after it are
                # the rows in the order they were listed, from the first of those read.
                shown = {entry.id: (key, entry) for key, entry in found}
                page = sorted(shown[row["id"]] for row in scanned[:limit] if row["id"] in shown)
                return Page([entry for _, entry in page], _listed_cursor(scanned[limit]["RowKey"], after))
        if len(found) > limit:
            return Page([entry for _, entry in found[:limit]], encode_cursor(found[limit][0]))
        return Page([entry for _, entry in found], None)

    async def _listed_order(
        self, owner: str, limit: int, after: str | None, listed_from: str
    ) -> Page[ConversationSummary]:
        """A page of the rows in the order they were listed, from `listed_from`, without the entries
        a page in the order of their times showed before (those before `after`)."""
        client = await self._table.ready()
        rows = range_rows(client, keys.owner_partition(owner), listed_from, keys.ACTIVITY_END, first_page=limit + 1)
        chunk: list[TableEntity] = await anext(_chunks(rows, limit + 1), [])
        page = sorted(
            (key, entry) for key, entry in await self._shown(owner, chunk[:limit]) if after is None or key >= after
        )
        following = _listed_cursor(chunk[limit]["RowKey"], after) if len(chunk) > limit else None
        return Page([entry for _, entry in page], following)

    async def _shown(self, owner: str, rows: Sequence[TableEntity]) -> list[tuple[str, ConversationSummary]]:
        """The entries of `rows` as a page shows them, with their heads, each under the activity
        key of the time shown: the head's, when it lists the entry (exists, under its floor)."""
        heads = await asyncio.gather(*(self._heads(Conversation(owner, row["id"])) for row in rows))
        shown = []
        for row, head in zip(rows, heads, strict=True):
            floor = _floor(row)
            current = head.exists and head.floor == floor
            updated = max(row["updated"], head.updated_at or "") if current else row["updated"]
            count = head.item_count if current and head.items is not None else int(row["count"])
            entry = ConversationSummary(
                id=row["id"],
                title=row["title"],
                created_at=row["created"],
                updated_at=updated,
                message_count=count,
                floor=floor,
                unconfirmed_since=row.get(UNCONFIRMED),
                head=head,
            )
            shown.append((keys.activity_row_key(micros(updated), row["RowKey"][-64:]), entry))
        return shown

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
    return not record.get("deleted") and record.get(UNCONFIRMED) is not None and _floor(record) == floor


def _floor(record: Mapping[str, Any]) -> int:
    # Records written before floors existed list a conversation never deleted.
    return int(record.get("floor", 0))


def _title(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


def micros(timestamp: str) -> int:
    """`updated_at` in microseconds since the epoch: the activity order is the order of the times shown."""
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return (moment - EPOCH) // timedelta(microseconds=1)


LISTED_ORDER = "r"  # a cursor that goes on in the order the entries were listed: "r{RowKey}|{after}"


def _listed_cursor(row_key: str, after: str | None) -> str:
    return encode_cursor(f"{LISTED_ORDER}{row_key}|{after or ''}")


def _is_position(key: str) -> bool:
    if not key.startswith(LISTED_ORDER):
        return keys.is_activity_row_key(key)
    listed_from, bar, after = key[1:].partition("|")
    return bool(bar) and keys.is_activity_row_key(listed_from) and (not after or keys.is_activity_row_key(after))


def _position(cursor: str | None) -> tuple[str | None, str | None]:
    """What a cursor names: the activity key of the next entry by time (`after`: the entries
    shown so far are before it), and, on pages in the order listed, the RowKey they resume at."""
    if not cursor:
        return None, None
    key = decode_cursor(cursor, _is_position)
    if not key.startswith(LISTED_ORDER):
        return key, None
    listed_from, _, after = key[1:].partition("|")
    return after or None, listed_from


def _micros_of_key(key: str) -> int:
    """The time an activity key orders by, in microseconds (a key to the millisecond: its start)."""
    digits = key[1 : len(key) - 64]
    return keys.MAX_MICROS - int(digits) if len(digits) == 16 else (keys.MAX_MICROS // 1000 - int(digits)) * 1000


async def _chunks(rows: AsyncIterator[TableEntity], size: int) -> AsyncIterator[list[TableEntity]]:
    chunk: list[TableEntity] = []
    async for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _cache_key(conversation: Conversation) -> str:
    return keys.owner_partition(conversation.owner) + keys.record_row_key(conversation.key)
