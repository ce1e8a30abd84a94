"""Does the daily quota hold under bursts, and is every charge counted? Turns let through and tokens stored.

Starts Azurite, the model and managed-identity stand-ins and two instances of the app on one
storage account (the same components the tests use, all on loopback), then for each scenario
sends its turns at once, from one signed-in owner, alternately to the two instances (every third
one streamed), and compares the usage the clients were told with the owner's count as stored.

    .venv/bin/python benchmarks/quota_burst.py [--runs 3]

Scenarios: one 100,000-character turn under a quota of 200; 20 turns of about 2,000 characters,
and 20 short ones, under the same quota; 20 short ones under a quota of 1,000; 50 short ones
under a quota no burst reaches (every turn admitted: does the count lose any?). Answers are
capped at 50 tokens under the small quotas (CHAT_MAX_ANSWER_TOKENS).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from azure.data.tables.aio import TableClient  # noqa: E402

from chat.storage import keys  # noqa: E402
from standins import StandIns  # noqa: E402
from tests.support.api import Api, Reply, signed_in  # noqa: E402
from tests.support.azurite import Azurite  # noqa: E402
from tests.support.servers import AppServer, app_env  # noqa: E402

SCENARIOS: list[tuple[int, str, int, Callable[[int], str]]] = [
    # quota, label, turns, message of turn n
    (200, "one 100,000-character turn", 1, lambda n: "a" * 100_000),
    (200, "20 turns of 2,000 characters", 20, lambda n: f"{n:02d} " + "lorem ipsum " * 166),
    (200, "20 short turns", 20, lambda n: f"{n:02d} " + "w " * 40),
    (1_000, "20 short turns", 20, lambda n: f"{n:02d} " + "w " * 40),
    (1_000_000, "50 short turns", 50, lambda n: f"turn {n} of the burst"),
]


async def stored_count(connection_string: str, prefix: str, owner: str) -> int:
    table = TableClient.from_connection_string(connection_string, table_name=f"{prefix}conversations")
    async with table:
        rows = table.query_entities(
            "PartitionKey eq @p and RowKey ge @lo and RowKey lt @hi",
            parameters={"p": keys.owner_partition(owner), "lo": keys.USAGE_PREFIX, "hi": "r"},
        )
        return sum([int(row["tokens"]) async for row in rows])


def usage_told(reply: Reply) -> int:
    if reply.status != 200 or (reply.lines and "error" in reply.lines[-1]):
        return 0
    usage = (reply.lines[-1] if reply.lines else reply.body)["context"]["usage"]
    return usage["prompt_tokens"] + usage["completion_tokens"]


async def burst(servers: list[AppServer], turns: int, message: Callable[[int], str]) -> tuple[Counter, int, str]:
    user_id = f"burst-{uuid.uuid4().hex}"
    headers = signed_in(user_id)
    async with Api(servers[0].url, headers=headers) as a, Api(servers[1].url, headers=headers) as b:
        replies = await asyncio.gather(
            *((a, b)[n % 2].chat(message(n), f"c{n % 5}", stream=n % 3 == 0) for n in range(turns))
        )
    return Counter(reply.status for reply in replies), sum(usage_told(r) for r in replies), f"user:aad:{user_id}"


async def main(runs: int) -> None:
    with StandIns() as standins:
        azurite = Azurite().start()
        try:
            print("| quota | burst | run | answered / refused (429) | usage told | stored |")
            print("| --- | --- | --- | --- | --- | --- |")
            for quota in sorted({scenario[0] for scenario in SCENARIOS}):
                prefix = "bench" + uuid.uuid4().hex[:8]
                cap = {"CHAT_MAX_ANSWER_TOKENS": "50"} if quota < 10_000 else {}
                env = app_env(
                    standins,
                    azurite.connection_string,
                    CHAT_DAILY_TOKEN_QUOTA=str(quota),
                    CHAT_TRUST_CLIENT_PRINCIPAL="true",
                    CHAT_TABLE_PREFIX=prefix,
                    **cap,
                )
                servers = [AppServer(env).start(), AppServer(env).start()]
                try:
                    for scenario_quota, label, turns, message in SCENARIOS:
                        if scenario_quota != quota:
                            continue
                        for run in range(1, (1 if turns == 1 else runs) + 1):
                            statuses, told, owner = await burst(servers, turns, message)
                            stored = await stored_count(azurite.connection_string, prefix, owner)
                            others = sum(count for status, count in statuses.items() if status not in (200, 429))
                            outcome = f"{statuses[200]} / {statuses[429]}" + (f" ({others} other)" if others else "")
                            print(f"| {quota:,} | {label} | {run} | {outcome} | {told:,} | {stored:,} |")
                finally:
                    for server in servers:
                        server.stop()
        finally:
            azurite.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each burst")
    asyncio.run(main(parser.parse_args().runs))
