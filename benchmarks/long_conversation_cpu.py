"""CPU per turn of the served app, continuing one long conversation: what the optimizations of a
turn's own work were measured with (docs/benchmarks.md, "What was tried").

Starts Azurite, the stand-ins and the app (the tests' components, on loopback), makes a
conversation of `--warm` turns of short messages (so a full window holds every one of them), then
times `--turns` more, each continuing it, and reads the app process's CPU (utime + stime) before
and after. With `--profile FILE`, py-spy records the app meanwhile (raw format, for flame graphs).

    .venv/bin/python benchmarks/long_conversation_cpu.py [--turns 200] [--warm 20] [--profile out.txt]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from standins import StandIns  # noqa: E402
from tests.support.api import Api  # noqa: E402
from tests.support.azurite import Azurite  # noqa: E402
from tests.support.servers import AppServer, app_env  # noqa: E402


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(turns: int, warm: int, profile: str | None) -> None:
    azurite = Azurite().start()
    try:
        with StandIns() as standins:
            server = AppServer(app_env(standins, azurite.connection_string)).start()
            try:
                pid = server.pid
                async with Api(server.url) as api:
                    first = await api.chat("hello there")
                    session = first.body["sessionState"]
                    for n in range(warm):
                        await api.chat(f"warm {n}", session)
                    spy = None
                    if profile:
                        spy = await asyncio.create_subprocess_exec(
                            str(ROOT / ".venv/bin/py-spy"),
                            "record",
                            "-p",
                            str(pid),
                            "-o",
                            profile,
                            "-f",
                            "raw",
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                        await asyncio.sleep(1)  # py-spy attaches
                    cpu, wall = cpu_seconds(pid), time.perf_counter()
                    for n in range(turns):
                        reply = await api.chat(f"turn {n} of the measurement", session)
                        assert reply.status == 200, reply.body
                    cpu, wall = cpu_seconds(pid) - cpu, time.perf_counter() - wall
                    if spy is not None:
                        spy.send_signal(2)
                        await spy.wait()
                per_turn = 1000 * cpu / turns, 1000 * wall / turns
                print(f"{turns} turns: CPU {per_turn[0]:.1f} ms a turn, wall {per_turn[1]:.1f} ms a turn")
            finally:
                server.stop()
    finally:
        azurite.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--profile", default=None)
    args = parser.parse_args()
    asyncio.run(run(args.turns, args.warm, args.profile))


if __name__ == "__main__":
    main()
