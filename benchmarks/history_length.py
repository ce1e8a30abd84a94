"""Does a turn cost more in a long conversation? Turn and GET-messages latency at 10, 1,000 and 10,000 messages.

Starts Azurite, the model and managed-identity stand-ins and the app (the same components the
tests use, all on loopback), seeds conversations of 10, 1,000 and 10,000 messages with rows
built by the store's own code in this process, then times turns over HTTP on each, and the
first page of GET messages. Each timed turn is removed again right after it, so the
conversations keep their size. The app is served once per history budget: the default, where a
long conversation's window fills the budget, and a small one, where both windows are alike.

The history read is also run in this process against the same tables with the same budget:
timed alone, with the query pages it takes and the rows they return.

    .venv/bin/python benchmarks/history_length.py [--turns 30] [--budgets 32000,1000] [--sizes 10,1000,10000]

Absolute figures are Azurite on loopback, not Azure Table Storage: compare rows and round
trips, not milliseconds, with what a deployment would see.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from azure.data.tables import UpdateMode  # noqa: E402
from azure.data.tables.aio import TableClient  # noqa: E402

from chat.engine.history import Conversation, NewTurn  # noqa: E402
from chat.engine.items import Usage, message  # noqa: E402
from chat.engine.tokens import estimate_tokens  # noqa: E402
from chat.storage import codec, keys  # noqa: E402
from chat.storage.limits import MAX_TRANSACTION_ENTITIES, check_transaction  # noqa: E402
from chat.storage.messages import TurnStore  # noqa: E402
from chat.storage.tables import Table  # noqa: E402
from chat.web.callers import APP_OWNER  # noqa: E402
from standins import StandIns  # noqa: E402
from tests.support.api import Api  # noqa: E402
from tests.support.azurite import Azurite  # noqa: E402
from tests.support.servers import AppServer, app_env  # noqa: E402

DEFAULT_SIZES = (10, 1_000, 10_000)  # messages; a turn is two
QUESTION = "Question {n}: how does the partition layout keep a long conversation's reads short?"
ANSWER = (
    "Answer {n}: RowKeys sort newest first, so the history query reads the newest turns and stops "
    "once the token budget is spent; the rest of the conversation is never read. " * 2
)


class RowCounter:
    """Counts the query pages a TableClient receives and the entities in them."""

    def __init__(self) -> None:
        self.pages = self.rows = 0

    def __call__(self, response) -> None:
        if response.http_request.method == "GET" and "()" in response.http_request.url:
            self.pages += 1
            self.rows += len(json.loads(response.http_response.body() or b"{}").get("value", []))


async def history_read(store: TurnStore, counter: RowCounter, conversation: Conversation, budget: int):
    """The turn's history read, run here: (median seconds of 10 reads, query pages, rows read)."""
    samples = []
    for _ in range(10):
        counter.pages = counter.rows = 0
        started = time.perf_counter()
        await store.read_history(conversation, budget, estimate_tokens)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), counter.pages, counter.rows


async def seed(store: TurnStore, table: TableClient, conversation: Conversation, messages: int) -> None:
    """Write the turns' rows as the store builds them, 50 turns to a transaction (append_turn's
    one transaction a turn would take minutes for 10,000 messages on Azurite)."""
    entities = []
    for number in range(1, messages // 2 + 1):
        turn = NewTurn(
            inputs=(message("user", QUESTION.format(n=number)),),
            outputs=(message("assistant", ANSWER.format(n=number)),),
            finish_reason="stop",
            usage=Usage(prompt_tokens=100, completion_tokens=60),
        )
        entities += codec.turn_entities(conversation, number, turn)
    entities.append(codec.head_entity(conversation.key, messages // 2, 0))
    for start in range(0, len(entities), MAX_TRANSACTION_ENTITIES):
        batch = entities[start : start + MAX_TRANSACTION_ENTITIES]
        check_transaction(batch)
        await table.submit_transaction([("create", entity) for entity in batch])


async def remove_turn(table: TableClient, conversation: Conversation, number: int) -> None:
    """Delete the rows of one turn and put the head back, so the next timed turn sees the same
    conversation."""
    start = keys.turn_prefix(number)
    async for entity in table.query_entities(
        "PartitionKey eq @pk and RowKey ge @start and RowKey lt @end",
        parameters={"pk": conversation.key, "start": start, "end": start + "z"},
        select=["RowKey"],
    ):
        await table.delete_entity(conversation.key, entity["RowKey"])
    await table.upsert_entity(codec.head_entity(conversation.key, number - 1, 0), mode=UpdateMode.REPLACE)


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms"


async def measure(
    server: AppServer, standins: StandIns, table: TableClient, conversations: dict[int, Conversation], args
) -> dict:
    results = {}
    async with Api(server.url) as api:

        async def turn(size: int, content: str) -> float:
            """One turn on the conversation of `size` messages, which is then put back to its size."""
            started = time.perf_counter()
            reply = await api.chat(content, conversations[size].id)
            elapsed = time.perf_counter() - started
            assert reply.status == 200, reply.body
            await remove_turn(table, conversations[size], size // 2 + 1)
            return elapsed

        for size in conversations:  # warm the app's clients and token cache
            await turn(size, "warm-up")
            results[size] = {"turns": [], "window": [], "get": []}
        for round_number in range(args.turns):
            for size, conversation in conversations.items():
                content = f"benchmark turn {round_number} {uuid.uuid4().hex}"
                results[size]["turns"].append(await turn(size, content))
                sent = next(e for e in reversed(standins.requests()) if e["body"]["messages"][-1]["content"] == content)
                results[size]["window"].append(len(sent["body"]["messages"]) - 2)
                started = time.perf_counter()
                page = await api.messages(conversation.id)
                results[size]["get"].append(time.perf_counter() - started)
                assert page.status == 200 and len(page.body["messages"]) == min(50, size)
        standins.clear()
    return results


async def main(args) -> None:
    prefix = "bench" + uuid.uuid4().hex[:10]
    budgets = [int(b) for b in args.budgets.split(",")]
    sizes = [int(n) for n in args.sizes.split(",")]
    azurite = Azurite().start()
    try:
        with StandIns() as standins:
            counter = RowCounter()
            messages = TableClient.from_connection_string(
                azurite.connection_string, table_name=f"{prefix}messages", raw_response_hook=counter
            )
            store = TurnStore(Table(messages))
            await store.table.ready()  # creates the table
            conversations = {size: Conversation(APP_OWNER, f"bench-{size}-{uuid.uuid4().hex}") for size in sizes}
            for size, conversation in conversations.items():
                started = time.perf_counter()
                await seed(store, messages, conversation, size)
                print(f"seeded {size:>6,} messages in {time.perf_counter() - started:5.1f} s", flush=True)

            print(f"\n{os.cpu_count()} CPUs; Azurite on loopback; {args.turns} turns per conversation and budget\n")
            for budget in budgets:
                env = app_env(
                    standins,
                    azurite.connection_string,
                    CHAT_TABLE_PREFIX=prefix,
                    CHAT_HISTORY_TOKEN_BUDGET=str(budget),
                    CHAT_MODEL_TIMEOUT_SECONDS="60",
                )
                server = AppServer(env).start()
                try:
                    results = await measure(server, standins, messages, conversations, args)
                finally:
                    server.stop()
                for size, conversation in conversations.items():
                    read_seconds, pages, rows = await history_read(store, counter, conversation, budget)
                    r = results[size]
                    print(
                        f"budget {budget:>6,}  {size:>6,} messages\n"
                        f"  turn over HTTP      {summary(r['turns'])}   window {statistics.median(r['window']):.0f} "
                        f"messages\n"
                        f"  history read        median {read_seconds * 1000:7.1f} ms   {rows:,} rows in {pages} "
                        f"queries\n"
                        f"  GET messages (50)   {summary(r['get'])}",
                        flush=True,
                    )
            await store.close()
    finally:
        azurite.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=30, help="timed turns per conversation and budget")
    parser.add_argument("--budgets", default="32000,1000", help="history token budgets, comma-separated")
    parser.add_argument(
        "--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="conversation lengths in messages, comma-separated"
    )
    asyncio.run(main(parser.parse_args()))
