"""A run: the components started, then each phase of measurement in turn, its figures kept."""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import aiohttp

from benchmarks.bench import process_phases, turn_phases
from benchmarks.bench.client import DirectModel, Timing, TurnFailed, client_session, timed_turn, turn_text
from benchmarks.bench.figures import cpu_per_label, machine, stats
from benchmarks.bench.goals import goals
from benchmarks.bench.plan import DOORS, SETTLE_SECONDS, SIDES, STREAMED, Plan
from benchmarks.bench.processes import Service, StandInProcess, base_env
from benchmarks.bench.storage import ANSWER, QUESTION, Storage
from benchmarks.bench.storage_proxy import RecordingProxy
from chat.engine.history import Conversation
from chat.web.callers import APP_OWNER
from tests.support.azurite import Azurite


class Bench:
    def __init__(self, plan: Plan, smoke: bool) -> None:
        self.plan = plan
        self.smoke = smoke
        self.prefix = "bench" + uuid.uuid4().hex[:10]
        self.azurite: Azurite | None = None
        self.proxy: RecordingProxy | None = None
        self.standins = StandInProcess()
        self.services: dict[str, Service] = {}
        self.sessions: dict[str, aiohttp.ClientSession] = {}
        self.storage: Storage | None = None
        self.direct: DirectModel | None = None
        self.figures: dict[str, Any] = {}
        self.errors: dict[str, dict[str, int]] = {}
        self.logged: dict[str, dict[str, int]] = {}
        self.rng = random.Random(11)

    def env(self, connection_string: str) -> dict[str, str]:
        return {
            **base_env(),
            **self.standins.env,
            "CHAT_STORAGE_CONNECTION_STRING": connection_string,
            "CHAT_TABLE_PREFIX": self.prefix,
        }

    def connection_string(self, port: int) -> str:
        assert self.azurite is not None
        return self.azurite.connection_string.replace(f"127.0.0.1:{self.azurite.port}/", f"127.0.0.1:{port}/")

    async def start(self) -> None:
        self.azurite = Azurite().start()
        self.proxy = RecordingProxy(self.azurite.port).start()
        self.standins.start()
        self.storage = Storage(self.azurite.connection_string, self.prefix)
        await self.storage.create()
        direct_env = self.env(self.azurite.connection_string)
        self.services = {
            "app": Service("the app", "chat.local:app", direct_env).start(),
            "forwarder": Service("the forwarder", "benchmarks.bench.forwarder:app", direct_env).start(),
            "counted": Service("the counted app", "chat.local:app", self.env(self.connection_string(self.proxy.port))),
        }
        self.services["counted"].start()
        for service in self.services.values():
            service.wait()
        self.sessions = {name: client_session() for name in (*self.services, "model")}
        self.direct = DirectModel(self.sessions["model"], self.standins)
        await self.direct.authenticate()

    async def stop(self) -> None:
        for session in self.sessions.values():
            await session.close()
        for service in self.services.values():
            service.stop()
            service.remove_log()
        if self.storage is not None:
            await self.storage.close()
        self.standins.stop()
        if self.proxy is not None:
            self.proxy.stop()
        if self.azurite is not None:
            self.azurite.stop()

    def say(self, text: str) -> None:
        print(text, flush=True)

    async def turn(self, phase: str, side: str, door: str, conversation: Conversation, content: str) -> Timing | None:
        """One turn; None if it failed, which is counted in the phase's errors and said at once."""
        try:
            return await timed_turn(self.sessions[side], self.services[side].url, door, conversation.id, content)
        except TurnFailed as e:
            self.failed(phase, f"{side} {door}: {e.label}")
            return None

    def server_logs(self, phase: str) -> None:
        """Count what the servers logged in `phase`, by message (their warnings and errors: a turn
        that still succeeded, such as one whose list update was lost, is known only from these)."""
        for name, service in self.services.items():
            for line in service.new_log_lines():
                what = f"{name}: {line.strip()[:90]}"
                found = self.logged.setdefault(phase, {})
                found[what] = found.get(what, 0) + 1
        for what, count in self.logged.get(phase, {}).items():
            self.say(f"  logged {count} x ({phase}) {what}")

    def failed(self, phase: str, what: str) -> None:
        found = self.errors.setdefault(phase, {})
        found[what] = found.get(what, 0) + 1
        self.say(f"  a turn failed ({phase}): {what}")

    async def pool(self, label: str, size: int) -> list[Conversation]:
        assert self.storage is not None
        conversations = [Conversation(APP_OWNER, f"bench-{label}-{n}-{uuid.uuid4().hex[:8]}") for n in range(size)]
        await self.storage.seed_many(conversations, self.plan.seeded_turns, QUESTION, ANSWER)
        return conversations

    async def warm(self, side: str, conversations: Sequence[Conversation]) -> None:
        """One turn on each conversation through `side`, with no model latency: a worker keeps the
        ETag of each list entry it last wrote, so a continuing turn on the worker that served the
        last one is what every timed turn then is."""
        limit = asyncio.Semaphore(8)

        async def one(conversation: Conversation) -> None:
            async with limit:
                await self.turn("warm-up", side, "chat", conversation, turn_text("warm-up", 0))

        await asyncio.gather(*(one(conversation) for conversation in conversations))

    # -- rounds: overhead, the storage floor, CPU per turn

    async def rounds(self) -> None:
        plan, storage, direct = self.plan, self.storage, self.direct
        assert storage is not None and direct is not None
        pool = await self.pool("rounds", plan.pool)
        # The floor's turns go to conversations of their own, alike: a head the floor changed
        # would make the app read a window it keeps from storage again.
        pools = {"floor": await self.pool("floor", plan.pool), "app": pool}
        used = dict.fromkeys(pools, 0)
        self.say(f"rounds: {plan.rounds} of every side, model latency {plan.latency * 1000:g} ms")
        entries: list[tuple[str, str]] = [("model", "chat"), ("model", "chat_stream"), ("floor", "")]
        entries += [(side, door) for side in SIDES for door in DOORS]

        def conversation(side: str) -> Conversation:
            name = "floor" if side == "floor" else "app"
            used[name] += 1
            return pools[name][used[name] % len(pools[name])]

        await self.warm("app", pool)
        for _ in range(plan.warmup):
            for side, door in entries:
                await self.sample(side, door, conversation(side), turn_text("warm-up", plan.latency))
        timings: dict[tuple[str, str], list[Timing]] = {entry: [] for entry in entries}
        floor: list[tuple[float, float, float, float]] = []
        marks: dict[str, list[tuple[str, float]]] = {side: [] for side in SIDES}
        for round_number in range(plan.rounds):
            order = entries[:]
            self.rng.shuffle(order)
            for side, door in order:
                content = turn_text(f"round {round_number}", plan.latency)
                if side in marks:
                    marks[side].append((door, self.services[side].cpu()))
                result = await self.sample(side, door, conversation(side), content)
                if side == "floor":
                    floor.append(result)
                elif result is not None:
                    timings[(side, door)].append(result)
        await asyncio.sleep(SETTLE_SECONDS)
        cpu = {side: cpu_per_label(marks[side], self.services[side].cpu()) for side in SIDES}

        model_json = [t.wall for t in timings[("model", "chat")]]
        model_first = [t.first for t in timings[("model", "chat_stream")] if t.first is not None]
        model_stream = [t.wall for t in timings[("model", "chat_stream")]]
        self.figures["model_standin"] = {
            "set_latency_ms": plan.latency * 1000,
            "json_ms": stats(model_json),
            "stream_first_delta_ms": stats(model_first),
            "stream_end_ms": stats(model_stream),
        }
        doors: dict[str, Any] = {}
        for door in DOORS:
            doors[door] = {}
            for side in SIDES:
                samples = timings[(side, door)]
                walls = [t.wall for t in samples]
                if door in STREAMED:
                    firsts = [t.first for t in samples if t.first is not None]
                    figures = {
                        "first_delta_ms": stats(firsts),
                        "overhead_ms": stats(firsts, shift=statistics.median(model_first)),
                        "end_ms": stats(walls),
                        "end_overhead_ms": stats(walls, shift=statistics.median(model_stream)),
                    }
                else:
                    figures = {
                        "wall_ms": stats(walls),
                        "overhead_ms": stats(walls, shift=statistics.median(model_json)),
                    }
                figures["cpu_ms"] = cpu[side][door]
                doors[door][side] = figures
        self.figures["doors"] = doors
        self.figures["storage_floor"] = {
            "read_ms": stats([f[0] for f in floor]),
            "transaction_ms": stats([f[1] for f in floor]),
            "total_ms": stats([f[0] + f[1] for f in floor]),
            "cpu_ms": round(statistics.fmean(f[2] + f[3] for f in floor) * 1000, 2),
            "read_cpu_ms": round(statistics.fmean(f[2] for f in floor) * 1000, 2),
            "transaction_cpu_ms": round(statistics.fmean(f[3] for f in floor) * 1000, 2),
        }
        for door in DOORS:
            app, forwarder = doors[door]["app"], doors[door]["forwarder"]
            self.say(
                f"  {door:17} overhead app {app['overhead_ms']['median']:7.1f} ms "
                f"(p99 {app['overhead_ms']['p99']:7.1f}),"
                f" forwarder {forwarder['overhead_ms']['median']:6.1f} ms;"
                f" CPU app {app['cpu_ms']:5.1f} ms, forwarder {forwarder['cpu_ms']:5.1f} ms"
            )
        floor_figures = self.figures["storage_floor"]
        self.say(
            f"  storage floor     read {floor_figures['read_ms']['median']:.1f} ms + transaction "
            f"{floor_figures['transaction_ms']['median']:.1f} ms, CPU {floor_figures['cpu_ms']:.1f} ms"
        )

    async def sample(self, side: str, door: str, conversation: Conversation, content: str) -> Any:
        assert self.direct is not None and self.storage is not None
        if side == "model":
            return await self.direct.call(content, stream=door == "chat_stream")
        if side == "floor":
            return await self.storage.floor(conversation, content)
        return await self.turn("rounds", side, door, conversation, content)

    async def standin_requests(self) -> list[dict[str, Any]]:
        async with self.sessions["model"].get(self.standins.model_url + "/_standin/requests") as response:
            return await response.json()

    async def standin_post(self, path: str) -> None:
        async with self.sessions["model"].post(self.standins.model_url + path) as response:
            response.raise_for_status()

    async def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.figures["machine"] = machine()
        self.figures["plan"] = {"mode": "smoke" if self.smoke else "full", **asdict(self.plan)}
        await self.start()
        try:
            self.server_logs("start")
            for phase, measure in (
                ("rounds", self.rounds),
                ("storage requests", lambda: turn_phases.storage_requests(self)),
                ("length", lambda: turn_phases.lengths(self)),
                ("concurrency", lambda: turn_phases.concurrency(self)),
                ("profile", lambda: process_phases.profile(self)),
                ("first request", lambda: process_phases.first_requests(self)),
            ):
                await measure()
                self.server_logs(phase)
                if phase == "concurrency":
                    process_phases.memory(self)
        finally:
            await self.stop()
        process_phases.imports(self)
        self.figures["errors"] = self.errors
        self.figures["logged"] = self.logged
        self.figures["goals"] = goals(self.figures, self.plan)
        self.figures["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
        self.figures["seconds"] = round(time.perf_counter() - started, 1)
        return self.figures
