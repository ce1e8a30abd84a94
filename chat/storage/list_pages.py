"""Pages of the owner's conversation list, in the order of the times they show.

The list lags its conversations by at most LIST_LAG_SECONDS (conversations.py), so a page reads
the head of every entry it considers (`heads`, the messages table's), shows the head's time and
count, and orders by them: an entry's true time is at most LIST_LAG_SECONDS after the time its row
is ordered by, so reading on until the rows are that much older than the page's last entry finds
every entry that belongs on the page. See docs/storage.md, "The list lags, and is put right as it
is read".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from azure.data.tables import TableEntity

from chat.engine.history import Conversation, ConversationSummary, Head, Page
from chat.storage import keys
from chat.storage.activity import LAG_MICROS, UNCONFIRMED, floor_of, micros, micros_of_key
from chat.storage.tables import Table, decode_cursor, encode_cursor, range_rows

# A page reads at most this many rows beyond its size for entries listed late; past it, the pages
# go on in the order the entries were listed.
MAX_EXTRA_ROWS = 200

HeadReader = Callable[[Conversation], Awaitable[Head]]


class ListPages:
    def __init__(self, table: Table, heads: HeadReader) -> None:
        self._table = table
        self._heads = heads

    async def page(self, owner: str, limit: int, cursor: str | None) -> Page[ConversationSummary]:
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
            if len(found) > limit and micros(chunk[-1]["updated"]) + LAG_MICROS <= micros_of_key(found[limit][0]):
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
            floor = floor_of(row)
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


async def _chunks(rows: AsyncIterator[TableEntity], size: int) -> AsyncIterator[list[TableEntity]]:
    chunk: list[TableEntity] = []
    async for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
