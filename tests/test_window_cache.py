"""The windows a worker keeps: a read whose head is unchanged answers from the window kept, and
every write of the conversation, by this worker or another, makes the next read see it. Each
check compares with a store that keeps nothing (another worker, reading the rows)."""

from __future__ import annotations

import json
import uuid

import pytest
from azure.data.tables.aio import TableClient

from chat.engine.history import Conversation
from chat.storage import keys
from chat.storage.messages import TurnStore
from chat.storage.tables import Table
from tests.support.turns import chat_turn, cost

pytestmark = pytest.mark.anyio


class CountingClient:
    """The table client, counting the entities each page of its queries brings back."""

    def __init__(self, client: TableClient) -> None:
        self._client = client
        self.pages: list[int] = []  # the rows of each page the queries brought back

    def __getattr__(self, name):
        return getattr(self._client, name)

    def query_entities(self, *args, **kwargs):
        def count(response) -> None:
            self.pages.append(len(json.loads(response.http_response.text()).get("value", [])))

        return self._client.query_entities(*args, raw_response_hook=count, **kwargs)


@pytest.fixture
async def stores(azurite):
    name = "window" + uuid.uuid4().hex[:8]
    clients = [TableClient.from_connection_string(azurite.connection_string, table_name=name) for _ in range(3)]
    counting = CountingClient(clients[0])
    table = Table(clients[0])
    table.client = counting  # type: ignore[assignment]
    worker, other, fresh = TurnStore(table), TurnStore(Table(clients[1])), TurnStore(Table(clients[2]))
    await other.table.ready()  # creates the table
    yield worker, other, fresh, counting
    await clients[1].delete_table()
    for store in (worker, other, fresh):
        await store.close()


def texts(history) -> list[str]:
    return [item.text for turn in history.turns for item in turn.items]


async def same_as_a_fresh_read(worker, fresh, conversation, budget):
    kept = await worker.read_history(conversation, budget, cost)
    read = await fresh.read_history(conversation, budget, cost)
    assert texts(kept) == texts(read)
    assert [t.number for t in kept.turns] == [t.number for t in read.turns]
    assert kept.head.etag == read.head.etag
    return kept


async def test_an_unchanged_head_answers_from_the_window_kept(stores):
    worker, other, fresh, counting = stores
    conversation = Conversation("app", f"kept-{uuid.uuid4().hex}")
    for n in range(40):
        await other.append_turn(conversation, await other.read_head(conversation), chat_turn(f"q{n}", f"a{n}"))
    await same_as_a_fresh_read(worker, fresh, conversation, 10_000)
    counting.pages = []
    again = await same_as_a_fresh_read(worker, fresh, conversation, 10_000)
    assert len(again.turns) == 40
    # One query still, but it stops at its first page: the head alone, as the window kept was
    # current when it was kept.
    assert counting.pages == [1]


async def test_a_turn_this_worker_stores_moves_its_window_on(stores):
    worker, _, fresh, counting = stores
    conversation = Conversation("app", f"moves-{uuid.uuid4().hex}")
    budget = cost(chat_turn("q00", "a00")) * 20  # a window of twenty such turns
    for n in range(25):
        history = await worker.read_history(conversation, budget, cost)
        await worker.append_turn(conversation, history.head, chat_turn(f"q{n:02d}", f"a{n:02d}"))
        kept = await same_as_a_fresh_read(worker, fresh, conversation, budget)
        assert len(kept.turns) == min(n + 1, 20)
    counting.pages = []
    await worker.read_history(conversation, budget, cost)
    assert counting.pages == [1]


async def test_another_workers_turn_is_seen(stores):
    worker, other, fresh, _ = stores
    conversation = Conversation("app", f"other-{uuid.uuid4().hex}")
    await worker.append_turn(conversation, await worker.read_head(conversation), chat_turn("mine", "a"))
    await same_as_a_fresh_read(worker, fresh, conversation, 10_000)
    await other.append_turn(conversation, await other.read_head(conversation), chat_turn("theirs", "b"))
    kept = await same_as_a_fresh_read(worker, fresh, conversation, 10_000)
    assert texts(kept) == ["mine", "a", "theirs", "b"]


async def test_a_deleted_item_and_a_deleted_conversation_are_seen(stores):
    worker, other, fresh, _ = stores
    conversation = Conversation("app", f"deleted-{uuid.uuid4().hex}")
    for n in range(3):
        await worker.append_turn(conversation, await worker.read_head(conversation), chat_turn(f"q{n}", f"a{n}"))
    history = await same_as_a_fresh_read(worker, fresh, conversation, 10_000)
    # Another worker deletes an item: the head's ETag changes, so the window kept is not used.
    assert await other.delete_item(conversation, history.turns[1].outputs[0].id)
    kept = await same_as_a_fresh_read(worker, fresh, conversation, 10_000)
    assert texts(kept) == ["q0", "a0", "q1", "q2", "a2"]
    await other.raise_floor(conversation)
    kept = await same_as_a_fresh_read(worker, fresh, conversation, 10_000)
    assert kept.turns == []


async def test_a_window_for_another_budget_is_read_again(stores):
    worker, _, fresh, _ = stores
    conversation = Conversation("app", f"budget-{uuid.uuid4().hex}")
    for n in range(6):
        await worker.append_turn(conversation, await worker.read_head(conversation), chat_turn(f"q{n}", f"a{n}"))
    await same_as_a_fresh_read(worker, fresh, conversation, 10_000)
    small = await same_as_a_fresh_read(worker, fresh, conversation, cost(chat_turn("q0", "a0")) * 2)
    assert len(small.turns) == 2


async def test_the_head_alone_is_asked_for_only_while_the_window_kept_stays_current(stores):
    """A worker whose window kept was current asks for the head alone; one that found it changed
    by another worker asks for a whole page (its next turn may well come after another's too),
    until a read finds its window current again. Every read is a fresh read's window."""
    worker, other, fresh, counting = stores
    conversation = Conversation("app", f"probe-{uuid.uuid4().hex}")
    for n in range(10):
        await other.append_turn(conversation, await other.read_head(conversation), chat_turn(f"q{n}", f"a{n}"))

    async def read_and_answer(store: TurnStore, n: int) -> list[int]:
        counting.pages = []
        history = await (
            same_as_a_fresh_read(store, fresh, conversation, 10_000)
            if store is worker
            else store.read_history(conversation, 10_000, cost)
        )
        pages = counting.pages
        await store.append_turn(conversation, history.head, chat_turn(f"q{n}", f"a{n}"))
        return pages

    assert await read_and_answer(worker, 10) == [21]  # nothing kept: a whole page (the head, 20 rows)
    assert await read_and_answer(worker, 11) == [1]  # kept and current: the head alone
    await read_and_answer(other, 12)
    pages = await read_and_answer(worker, 13)  # kept, but another worker wrote since
    assert pages[0] == 1 and sum(pages) == 27  # the head alone, then on from it: one page more
    assert await read_and_answer(worker, 14) == [29]  # found changed last time: a whole page
    assert await read_and_answer(worker, 15) == [1]  # which found it current: the head alone again


async def test_a_read_bounded_below_the_window_kept_reads_on_only_when_asked(stores):
    """The first query of a read stops at the turns older than the window kept (older_than); a
    reader that wants more gets them from a second query, and one that does not sends none."""
    worker, other, _, counting = stores
    conversation = Conversation("app", f"bound-{uuid.uuid4().hex}")
    for n in range(12):
        await other.append_turn(conversation, await other.read_head(conversation), chat_turn(f"q{n}", f"a{n}"))
    _, everything = await other.from_head(conversation.key)
    expected = [row["RowKey"] async for row in everything]

    counting.pages = []
    head, rows = await worker.from_head(conversation.key, until=keys.turn_prefix(5))
    assert head.latest_turn == 12
    read = [row["RowKey"] async for row in rows]
    assert read == expected  # every row after the head, the older ones from a second query
    assert len(counting.pages) == 2 and counting.pages[0] == 1 + 2 * 7  # the head and turns 12 to 6

    counting.pages = []
    _, rows = await worker.from_head(conversation.key, until=keys.turn_prefix(5))
    newest = [await anext(rows) for _ in range(4)]
    await rows.aclose()
    assert len(newest) == 4 and len(counting.pages) == 1  # read no further: no second query
