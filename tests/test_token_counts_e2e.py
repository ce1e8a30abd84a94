"""The daily token count against Azurite: concurrent additions from several instances all land,
spread over the day's shards, and the day's total is one range read over them."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest
from azure.data.tables.aio import TableClient

from chat.storage import keys
from chat.storage.quota import SHARDS, TokenLedger
from chat.storage.tables import Table

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

DAY = "20260314"


@pytest.fixture
async def tables(azurite):
    """One table, through three clients, as three app instances have."""
    name = "counts" + uuid.uuid4().hex[:10]
    tables = [Table(TableClient.from_connection_string(azurite.connection_string, table_name=name)) for _ in range(3)]
    yield tables
    for table in tables:
        await table.close()


@pytest.fixture
def instances(tables):
    """Three TokenLedgers on the one table, each with its own client."""
    return [TokenLedger(table) for table in tables]


async def test_concurrent_additions_from_several_instances_all_count(instances):
    owner = f"owner-{uuid.uuid4().hex}"
    amounts = [random.randint(-50, 500) for _ in range(120)]
    holds = [random.choice([0, amount]) for amount in amounts]  # some reserve, some settle
    await asyncio.gather(
        *(
            instances[n % 3].add(owner, DAY, amount, held=hold)
            for n, (amount, hold) in enumerate(zip(amounts, holds, strict=True))
        )
    )
    count = await instances[0].read(owner, DAY)
    assert (count.total, count.held, count.settled) == (sum(amounts), sum(holds), sum(amounts) - sum(holds))
    assert 1 < len(count.rows) <= SHARDS
    assert set(count.rows) <= {keys.usage_row_key(DAY, shard) for shard in range(SHARDS)}


async def test_an_addition_from_a_stale_read_moves_on_and_still_counts(instances):
    owner = f"owner-{uuid.uuid4().hex}"
    counts = instances[0]
    for _ in range(3 * SHARDS):
        await counts.add(owner, DAY, 1)
    stale = await counts.read(owner, DAY)
    for _ in range(3 * SHARDS):
        await instances[1].add(owner, DAY, 1)  # every shard's ETag in `stale` is now likely out of date
    await counts.add(owner, DAY, 100, seen=stale)
    assert (await counts.read(owner, DAY)).total == 6 * SHARDS + 100


async def test_the_day_is_its_own_and_the_one_row_of_earlier_versions_counts(instances, tables):
    owner = f"owner-{uuid.uuid4().hex}"
    counts = instances[0]
    await counts.add(owner, DAY, 7)
    await counts.add(owner, "20260313", 1000)
    await counts.add(owner, "20260315", 1000)
    # Earlier versions kept one row a day, `q{YYYYMMDD}`; a count under way when they were replaced goes on.
    table = await tables[0].ready()
    await table.create_entity({"PartitionKey": keys.owner_partition(owner), "RowKey": f"q{DAY}", "tokens": 30})
    await counts.add(owner, DAY, 5, held=5)
    count = await counts.read(owner, DAY)
    assert (count.total, count.held) == (42, 5)
    await counts.add(owner, DAY, -42, held=-5)
    assert (await counts.read(owner, DAY)).total == 0
    assert (await counts.read(f"someone-else-{uuid.uuid4().hex}", DAY)).total == 0
