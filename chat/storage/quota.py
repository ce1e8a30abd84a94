"""Each owner's token count for a UTC day, for the daily quota (CHAT_DAILY_TOKEN_QUOTA).

The count lives in the owner's partition of the conversations table, so it holds across
instances. One row would serialize every turn of an owner on its ETag, and under a burst
additions would give up; so the day's count is spread over SHARDS rows (`q{YYYYMMDD}-{shard:02}`).
An addition goes to one shard chosen at random, replaced under its ETag (or created); when a
concurrent addition changed that shard first, it reads the day again and moves to another shard.
The day's count is the sum of its rows, read in one range query. Additions may be negative (a
settle below the reservation, a refund), so one shard can go below zero: only the sum means
anything. A row `q{YYYYMMDD}` that earlier versions wrote (one row a day) is in the range, and
counted.

Each row holds `tokens`, everything counted, and `held`, the part of it that turns in flight have
reserved and not yet settled: what is left, `tokens - held`, is what settled turns used.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping
from dataclasses import dataclass

from chat.engine.errors import StorageUnavailable
from chat.storage import keys
from chat.storage.tables import Operation, Table, change_under_etag, range_rows, replace_or_create

SHARDS = 16
# Each attempt is one write and, after a clash, one read. Clashes need a concurrent addition to
# the same shard in between, so even a burst of hundreds of turns settles in a few attempts.
ATTEMPTS = 64


@dataclass(frozen=True)
class Shard:
    tokens: int
    held: int
    etag: str


@dataclass(frozen=True)
class DayCount:
    """An owner's count for a day as one read saw it, and each row's values and ETag."""

    total: int  # every token counted, reservations of turns in flight included
    held: int  # the reservations of turns in flight
    rows: Mapping[str, Shard]

    @property
    def settled(self) -> int:
        """The tokens of turns that have settled."""
        return self.total - self.held


class TokenLedger:
    """The daily token counts, in the owner's partition of the conversations table."""

    def __init__(self, table: Table) -> None:
        self._table = table

    async def read(self, owner: str, day: str) -> DayCount:
        """The owner's count for the day: one range query over the day's rows."""
        client = await self._table.ready()
        low, high = keys.usage_range(day)
        # The day's shards and the one row a day of earlier versions: one page.
        rows = range_rows(client, keys.owner_partition(owner), low, high, first_page=SHARDS + 1)
        shards = {
            row["RowKey"]: Shard(int(row["tokens"]), int(row.get("held", 0)), str(row.metadata["etag"]))
            async for row in rows
        }
        return DayCount(
            sum(shard.tokens for shard in shards.values()), sum(shard.held for shard in shards.values()), shards
        )

    async def add(self, owner: str, day: str, tokens: int, *, held: int = 0, seen: DayCount | None = None) -> None:
        """Add `tokens` (negative to take away) to the owner's count for the day, and `held` to
        the part of it held by turns in flight (a reservation adds to both, its settle takes it off).

        `seen` is a read of the day to start from (its ETags spare a read); without it, or once
        it is stale, the day is read again. Raises StorageUnavailable if every attempt clashed:
        the caller must then treat the tokens as not added.
        """
        client = await self._table.ready()
        partition = keys.owner_partition(owner)
        # Each attempt tries the next shard of a random order, so a clash moves the addition on.
        shards = itertools.cycle(random.sample(range(SHARDS), SHARDS))

        def change(count: DayCount) -> list[Operation]:
            row_key = keys.usage_row_key(day, next(shards))
            shard = count.rows.get(row_key)
            entity = {
                "PartitionKey": partition,
                "RowKey": row_key,
                "tokens": tokens + (shard.tokens if shard else 0),
                "held": held + (shard.held if shard else 0),
            }
            return [replace_or_create(entity, shard.etag if shard else None)]

        await change_under_etag(
            client,
            lambda: self.read(owner, day),
            change,
            attempts=ATTEMPTS,
            busy=StorageUnavailable("The daily token count is too busy to update; try again."),
            seen=seen,
        )
