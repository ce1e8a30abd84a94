"""The benchmark's instruments (benchmarks/): the recording proxy in front of Azurite, the count of
requests run one after another, the CPU charged to each turn, and the profile's split by side."""

from __future__ import annotations

import uuid

import pytest
from azure.data.tables.aio import TableClient

from benchmarks.bench import profile_split
from benchmarks.bench.figures import cpu_per_label, percentile
from benchmarks.bench.storage_proxy import RecordingProxy, StorageRequest, sequential_depth
from tests.support import ROOT

pytestmark = pytest.mark.anyio


async def test_the_proxy_records_each_storage_request_by_kind_table_and_time(azurite):
    name = "proxy" + uuid.uuid4().hex[:8]
    with RecordingProxy(azurite.port) as proxy:
        through_proxy = azurite.connection_string.replace(f":{azurite.port}/", f":{proxy.port}/")
        async with TableClient.from_connection_string(through_proxy, table_name=name) as client:
            await client.create_table()
            await client.submit_transaction([("create", {"PartitionKey": "p", "RowKey": str(n)}) for n in range(3)])
            rows = [entity async for entity in client.query_entities("PartitionKey eq 'p'")]
            await client.get_entity("p", "0")
            requests = proxy.requests()
            later = proxy.requests(since=requests[2].started)
            await client.delete_table()
    assert len(rows) == 3
    assert [request.describe() for request in requests] == [
        "create table",
        f"batch {name} (3 operations)",
        f"query {name}",
        f"get {name}",
    ]
    assert all(request.ended is not None and request.ended > request.started for request in requests)
    # Each was awaited before the next began: none overlaps another.
    assert sequential_depth(requests) == 4
    assert later == requests[2:]


def _request(started: float, ended: float) -> StorageRequest:
    return StorageRequest("GET", "/devstoreaccount1/t()", started, ended)


def test_requests_that_overlap_count_once_on_the_critical_path():
    read = _request(0, 10)
    transaction = _request(60, 70)
    list_read, list_write = _request(61, 64), _request(65, 69)
    # The list's read then write run beside the transaction: read, then two deep beside it.
    assert sequential_depth([read, transaction, list_read, list_write]) == 3
    assert sequential_depth([read, transaction, _request(61, 69)]) == 2
    assert sequential_depth([read, _request(11, 20), _request(21, 30)]) == 3
    assert sequential_depth([]) == 0


def test_each_turn_is_charged_its_process_cpu_until_the_next_turn_starts():
    marks = [("chat", 10.0), ("stream", 10.02), ("chat", 10.05)]
    assert cpu_per_label(marks, final=10.06) == {"chat": 15.0, "stream": 30.0}


def test_percentile_is_the_nearest_rank():
    ordered = [float(n) for n in range(1, 201)]
    assert percentile(ordered, 0.99) == 198.0
    assert percentile(ordered, 0.5) == 100.0
    assert percentile([3.0], 0.99) == 3.0


def _frame(function: str, file: str) -> str:
    return f"{function} ({file}:1)"


SITE = "/venv/lib/python3.11/site-packages"


def test_the_profile_gives_each_sample_to_the_side_nearest_its_leaf():
    loop = _frame("run_forever", "/usr/lib/python3.11/asyncio/base_events.py")
    handler = _frame("reply", f"{ROOT}/chat/web/chat.py")
    raw = "\n".join(
        [
            # pydantic under our code is ours; under the openai SDK the SDK's
            ";".join([loop, handler, _frame("validate", f"{SITE}/pydantic/main.py")]) + " 5",
            ";".join([loop, _frame("create", f"{SITE}/openai/_client.py"), _frame("v", f"{SITE}/pydantic/main.py")])
            + " 3",
            # a storage call made by our code is the storage SDK's
            ";".join([loop, handler, _frame("query", f"{SITE}/azure/data/tables/aio/_table_client_async.py")]) + " 4",
            # a storage response arriving, with nothing but the event loop above aiohttp
            ";".join([loop, _frame("data_received", f"{SITE}/aiohttp/client_proto.py")]) + " 2",
            # Starlette reading a body for our handler is the framework's
            ";".join([loop, handler, _frame("body", f"{SITE}/starlette/requests.py")]) + " 1",
            # the event loop alone
            loop + " 5",
        ]
    )
    found = profile_split.split(raw, ROOT)
    assert found["samples"] == 20
    assert found["fractions"] == {"storage SDK": 0.3, "openai SDK": 0.15, "our code": 0.25, "framework": 0.3}
    assert found["ours_inclusive"][0] == ["reply (chat/web/chat.py)", 0.5]
    assert found["storage_inclusive"] == [
        ["query (azure/data/tables/aio/_table_client_async.py)", 0.2],
        ["data_received (aiohttp/client_proto.py)", 0.1],
    ]
    # File names as their packages name them: no path of the machine that ran it.
    assert ["run_forever (asyncio/base_events.py)", 0.25] in found["self"]
    assert ["validate (pydantic/main.py)", 0.25] in found["self"]
