"""The table plumbing: writes conditional on what was read, range reads in pages, and tables
made on first use.

Conditional writes and range reads run against Azurite, so the ETags, clashes and pages are the
service's own; a clash is made by a second writer that changes the row between the helper's read
and its write. Making a table is tested with a fake client of our own, since Azurite never
refuses Create Table with 403.
"""

from __future__ import annotations

import logging
import uuid
from urllib.parse import parse_qs, urlparse

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceExistsError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from chat.engine.errors import ConversationBusy, StorageUnavailable
from chat.storage import tables

pytestmark = pytest.mark.anyio

P = "partition"


@pytest.fixture
async def client(azurite):
    """A client of a new table, and a record of the requests it sends."""
    sent: list[str] = []
    table = TableClient.from_connection_string(
        azurite.connection_string,
        table_name="t" + uuid.uuid4().hex[:16],
        raw_request_hook=lambda request: sent.append(request.http_request.url),
    )
    await table.create_table()
    table.sent = sent
    yield table
    await table.close()


class Counter:
    """A row holding `n`, changed by `change_under_etag`, and a second writer to clash with it."""

    def __init__(self, client: TableClient, row: str = "counter") -> None:
        self.client = client
        self.row = row
        self.reads = 0
        self.seen: list[int | None] = []  # `n` as each call of change saw it

    async def read(self):
        self.reads += 1
        return await tables.get_entity_or_none(self.client, P, self.row)

    def add(self, amount: int):
        def change(entity):
            self.seen.append(None if entity is None else entity["n"])
            n = amount + (entity["n"] if entity is not None else 0)
            etag = entity.metadata["etag"] if entity is not None else None
            return [tables.replace_or_create({"PartitionKey": P, "RowKey": self.row, "n": n}, etag)]

        return change

    async def value(self) -> int | None:
        entity = await tables.get_entity_or_none(self.client, P, self.row)
        return None if entity is None else entity["n"]

    async def interfere(self, amount: int) -> None:
        """Another writer adds `amount` unconditionally (creating the row if need be)."""
        now = await self.value()
        await self.client.upsert_entity(
            {"PartitionKey": P, "RowKey": self.row, "n": (now or 0) + amount}, mode=UpdateMode.REPLACE
        )


def interfering(counter: Counter, change, times: int, amount: int = 100):
    """`change`, with another writer changing the row after each of the first `times` reads."""
    remaining = [times]

    async def read():
        entity = await counter.read()
        if remaining[0]:
            remaining[0] -= 1
            await counter.interfere(amount)
        return entity

    return read, change


BUSY = ConversationBusy("busy")


async def test_a_row_is_created_then_replaced_under_its_etag(client):
    counter = Counter(client)
    for _ in range(2):
        await tables.change_under_etag(client, counter.read, counter.add(1), attempts=3, busy=BUSY)
    assert counter.seen == [None, 1]
    assert await counter.value() == 2


@pytest.mark.parametrize(
    ("before", "seen", "after"), [(1, [1, 101], 102), (None, [None, 100], 101)], ids=["update", "create"]
)
async def test_a_write_that_lost_to_another_writer_reads_again_and_changes_what_it_finds(client, before, seen, after):
    """The first write is made from what was read (n=1, or no row) and loses to the other
    writer's; the second is made from what that writer left, so both additions count."""
    counter = Counter(client)
    if before is not None:
        await counter.interfere(before)
    read, change = interfering(counter, counter.add(1), times=1)
    state = await tables.change_under_etag(client, read, change, attempts=3, busy=BUSY)
    assert counter.seen == seen
    assert state["n"] == seen[-1]
    assert await counter.value() == after


async def test_every_attempt_clashing_raises_busy_and_writes_nothing_of_its_own(client):
    counter = Counter(client)
    await counter.interfere(1)
    read, change = interfering(counter, counter.add(1), times=5)
    with pytest.raises(ConversationBusy) as raised:
        await tables.change_under_etag(client, read, change, attempts=4, busy=BUSY)
    assert raised.value is BUSY
    assert counter.seen == [1, 101, 201, 301]
    assert await counter.value() == 401  # the other writer's four additions, none of ours


async def test_a_transaction_is_written_whole_or_not_at_all(client):
    """Several operations in one partition: a record under its ETag, and a row named by the
    attempt. The first attempt clashes on the record, so its row is not written either."""
    counter = Counter(client)
    await counter.interfere(1)
    attempt = iter(range(1, 10))

    def change(entity):
        operations = counter.add(1)(entity)
        operations.append(("create", {"PartitionKey": P, "RowKey": f"attempt-{next(attempt)}"}))
        return operations

    read, change = interfering(counter, change, times=1)
    await tables.change_under_etag(client, read, change, attempts=3, busy=BUSY)
    rows = [row["RowKey"] async for row in tables.range_rows(client, P, "a", "b", first_page=10)]
    assert rows == ["attempt-2"]
    assert await counter.value() == 102


async def test_a_transaction_that_deletes_a_row_gone_meanwhile_reads_again(client):
    """Another writer deleted the row the write would delete: ResourceNotFound is a clash too."""
    await client.create_entity({"PartitionKey": P, "RowKey": "old"})
    deleted = [False]

    async def read():
        entity = await tables.get_entity_or_none(client, P, "old")
        if not deleted[0]:
            deleted[0] = True
            await client.delete_entity(P, "old")
        return entity

    def change(old):
        operations = [("create", {"PartitionKey": P, "RowKey": "new"})]
        if old is not None:
            operations.append(("delete", {"PartitionKey": P, "RowKey": "old"}))
        return operations

    assert await tables.change_under_etag(client, read, change, attempts=3, busy=BUSY) is None
    assert [row["RowKey"] async for row in tables.range_rows(client, P, "", "~", first_page=10)] == ["new"]


async def test_nothing_to_write_writes_nothing(client):
    counter = Counter(client)
    await counter.interfere(5)
    sent_before = len(client.sent)
    state = await tables.change_under_etag(client, counter.read, lambda entity: [], attempts=3, busy=BUSY)
    assert state["n"] == 5
    assert counter.reads == 1
    assert len(client.sent) == sent_before + 1  # the read, and no write


async def test_a_state_already_read_spares_the_first_read(client):
    counter = Counter(client)
    await counter.interfere(1)
    seen = await tables.get_entity_or_none(client, P, counter.row)
    await tables.change_under_etag(client, counter.read, counter.add(1), attempts=3, busy=BUSY, seen=seen)
    assert counter.reads == 0
    assert await counter.value() == 2

    # Once stale, it is read again.
    await counter.interfere(10)
    await tables.change_under_etag(client, counter.read, counter.add(1), attempts=3, busy=BUSY, seen=seen)
    assert counter.reads == 1
    assert counter.seen == [1, 1, 12]
    assert await counter.value() == 13


async def test_a_failure_that_is_no_clash_is_not_retried(azurite):
    """A write to a table that does not exist fails with a 404 too, but no retry can help it."""
    missing = TableClient.from_connection_string(azurite.connection_string, table_name="t" + uuid.uuid4().hex[:16])
    changes = []

    async def read():
        return None

    def change(state):
        changes.append(state)
        return [("create", {"PartitionKey": P, "RowKey": "r"})]

    async with missing:
        with pytest.raises(StorageUnavailable):
            await tables.change_under_etag(missing, read, change, attempts=5, busy=BUSY)
    assert changes == [None]


async def seed(client: TableClient, keys: list[str], partition: str = P) -> None:
    for start in range(0, len(keys), 100):
        batch = [("create", {"PartitionKey": partition, "RowKey": key}) for key in keys[start : start + 100]]
        await client.submit_transaction(batch)


def page_sizes(sent: list[str]) -> list[int]:
    return [int(parse_qs(urlparse(url).query)["$top"][0]) for url in sent if "$top" in url]


async def test_a_range_is_its_partitions_rows_from_start_to_before_end_in_pages_that_double(client):
    await seed(client, [f"r{i:03d}" for i in range(100)] + ["q", "s"])
    await seed(client, ["r020"], partition="other")
    client.sent.clear()
    rows = [row["RowKey"] async for row in tables.range_rows(client, P, "r010", "r050", first_page=3)]
    assert rows == [f"r{i:03d}" for i in range(10, 50)]
    assert page_sizes(client.sent) == [3, 6, 12, 24]


async def test_a_reader_that_stops_early_reads_one_page(client):
    await seed(client, [f"r{i:03d}" for i in range(50)])
    client.sent.clear()
    async for row in tables.range_rows(client, P, "r", "s", first_page=5):
        if row["RowKey"] == "r002":
            break
    assert page_sizes(client.sent) == [5]


async def test_pages_never_ask_for_more_than_azure_returns(client):
    rows = [row async for row in tables.range_rows(client, P, "a", "z", first_page=5000)]
    assert rows == []
    assert page_sizes(client.sent) == [1000]


async def test_a_range_reads_only_the_properties_selected(client):
    await client.create_entity({"PartitionKey": P, "RowKey": "r", "kept": 1, "dropped": 2})
    [row] = [row async for row in tables.range_rows(client, P, "r", "s", first_page=1, select=["RowKey", "kept"])]
    assert dict(row) == {"RowKey": "r", "kept": 1}


async def test_a_range_on_a_missing_table_is_storage_unavailable(azurite):
    missing = TableClient.from_connection_string(azurite.connection_string, table_name="t" + uuid.uuid4().hex[:16])
    async with missing:
        with pytest.raises(StorageUnavailable):
            [row async for row in tables.range_rows(missing, P, "a", "b", first_page=1)]


class FakeTableClient:
    """What Table uses of a TableClient: create_table (failing as told), table_name, close."""

    table_name = "chatmessages"

    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.creates = 0

    async def create_table(self) -> None:
        self.creates += 1
        if self.error is not None:
            raise self.error

    async def close(self) -> None:
        pass


def http_error(status: int, code: str, kind: type[HttpResponseError] = HttpResponseError) -> HttpResponseError:
    error = kind(message=f"{code} from the fake")
    error.status_code = status
    error.error_code = code
    return error


async def test_a_table_refused_with_403_is_taken_as_made_by_the_deployment_and_said_once(caplog):
    """A principal with data roles on the table only may be refused Create Table (403)."""
    client = FakeTableClient(http_error(403, "AuthorizationPermissionMismatch"))
    table = tables.Table(client)
    caplog.set_level(logging.INFO, logger="chat")
    assert await table.ready() is client
    assert await table.ready() is client
    assert client.creates == 1
    warnings = [r for r in caplog.records if r.name == "chat.storage.tables"]
    assert [r.levelname for r in warnings] == ["WARNING"]
    assert "chatmessages" in warnings[0].getMessage() and "AuthorizationPermissionMismatch" in warnings[0].getMessage()


async def test_a_table_that_exists_is_ready_without_a_word(caplog):
    client = FakeTableClient(ResourceExistsError("TableAlreadyExists"))
    caplog.set_level(logging.INFO, logger="chat")
    assert await tables.Table(client).ready() is client
    assert [r for r in caplog.records if r.name == "chat.storage.tables"] == []


@pytest.mark.parametrize(
    "error",
    [
        http_error(403, "AuthenticationFailed", ClientAuthenticationError),
        http_error(500, "InternalError"),
        http_error(404, "ResourceNotFound"),
    ],
    ids=["credential refused", "server error", "not found"],
)
async def test_other_failures_to_make_a_table_are_storage_unavailable_and_tried_again(error):
    client = FakeTableClient(error)
    table = tables.Table(client)
    for _ in range(2):
        with pytest.raises(StorageUnavailable):
            await table.ready()
    assert client.creates == 2
