"""A run: the components started, then each phase of measurement in turn, its figures kept."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.bench import profile_split
from benchmarks.bench.client import DirectModel, Timing, TurnFailed, client_session, timed_turn, turn_text
from benchmarks.bench.figures import cpu_per_label, machine, stats
from benchmarks.bench.goals import goals
from benchmarks.bench.plan import DOORS, IMPORTS, SIDES, STREAMED, UNCONFIGURED, Plan
from benchmarks.bench.processes import PROFILE_RATE, ROOT, Service, StandInProcess, base_env, start_py_spy
from benchmarks.bench.storage import ANSWER, LONG_ANSWER, LONG_QUESTION, QUESTION, Storage
from benchmarks.bench.storage_proxy import RecordingProxy, StorageRequest, sequential_depth
from chat.engine.history import Conversation
from chat.web.callers import APP_OWNER
from tests.support.azurite import Azurite

SETTLE_SECONDS = 0.3  # after a phase, for what a server still does after its last answer


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
        self._rng = random.Random(11)

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
                await self._sample(side, door, conversation(side), turn_text("warm-up", plan.latency))
        timings: dict[tuple[str, str], list[Timing]] = {entry: [] for entry in entries}
        floor: list[tuple[float, float, float, float]] = []
        marks: dict[str, list[tuple[str, float]]] = {side: [] for side in SIDES}
        for round_number in range(plan.rounds):
            order = entries[:]
            self._rng.shuffle(order)
            for side, door in order:
                content = turn_text(f"round {round_number}", plan.latency)
                if side in marks:
                    marks[side].append((door, self.services[side].cpu()))
                result = await self._sample(side, door, conversation(side), content)
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

    async def _sample(self, side: str, door: str, conversation: Conversation, content: str) -> Any:
        assert self.direct is not None and self.storage is not None
        if side == "model":
            return await self.direct.call(content, stream=door == "chat_stream")
        if side == "floor":
            return await self.storage.floor(conversation, content)
        return await self.turn("rounds", side, door, conversation, content)

    # -- storage requests per continuing turn

    async def storage_requests(self) -> None:
        plan, proxy = self.plan, self.proxy
        assert proxy is not None
        pool = await self.pool("counted", max(2, plan.count_turns))
        self.say(f"storage requests: {plan.count_turns} continuing turns a door through the recording proxy")
        for door in DOORS:  # the counted app's first turns: its token, its tables
            await self.turn("warm-up", "counted", door, pool[0], turn_text("warm-up", plan.latency))
        await self.warm("counted", pool)
        results: dict[str, Any] = {}
        for door in DOORS:
            turns = []
            for number in range(plan.count_turns):
                started = time.monotonic()
                content = turn_text(f"count {number}", plan.latency)
                done = await self.turn("storage requests", "counted", door, pool[number % len(pool)], content)
                answered = time.monotonic()
                await asyncio.sleep(SETTLE_SECONDS)
                if done is not None:
                    turns.append(_turn_requests(proxy.requests(since=started), started, answered, self.prefix))
            results[door] = {
                "requests": statistics.median(t["requests"] for t in turns),
                "requests_max": max(t["requests"] for t in turns),
                "critical_path": statistics.median(t["critical_path"] for t in turns),
                "critical_path_max": max(t["critical_path"] for t in turns),
                "after_answer": statistics.median(t["after_answer"] for t in turns),
                "list_update_outlasts_transaction": round(
                    sum(bool(t["list_update_outlasts_transaction"]) for t in turns) / len(turns), 2
                ),
                "example": turns[-1]["timeline"],
            }
            self.say(
                f"  {door:17} {results[door]['requests']:g} requests, {results[door]['critical_path']:g} one after "
                f"another; the list update outlasts the transaction in "
                f"{results[door]['list_update_outlasts_transaction']:.0%} of turns"
            )
        self.figures["storage_requests"] = results

    # -- turn cost against conversation length

    async def lengths(self) -> None:
        plan, storage = self.plan, self.storage
        assert storage is not None
        conversations = {
            size: Conversation(APP_OWNER, f"bench-length-{size}-{uuid.uuid4().hex[:8]}") for size in plan.sizes
        }
        for size, conversation in conversations.items():
            started = time.perf_counter()
            await storage.seed(conversation, size // 2, LONG_QUESTION, LONG_ANSWER)
            self.say(f"length: seeded {size:,} messages in {time.perf_counter() - started:.1f} s")

        async def timed(size: int, content: str) -> Timing | None:
            timing = await self.turn("length", "app", "chat", conversations[size], content)
            if timing is not None:  # a failed turn stored nothing
                await storage.remove_turn(conversations[size], size // 2 + 1)
            return timing

        for size in plan.sizes:
            await timed(size, turn_text("warm-up", plan.latency))
        await self._standin_post("/_standin/clear")
        walls: dict[int, list[float]] = {size: [] for size in plan.sizes}
        reads: dict[int, list[float]] = {size: [] for size in plan.sizes}
        windows: dict[int, str] = {}
        window_sizes: dict[int, int] = {}
        marks: list[tuple[str, float]] = []
        for round_number in range(plan.length_rounds):
            order = list(plan.sizes)
            self._rng.shuffle(order)
            for size in order:
                content = turn_text(f"length {round_number}", plan.latency)
                windows.setdefault(size, content)
                marks.append((str(size), self.services["app"].cpu()))
                timing = await timed(size, content)
                if timing is not None:
                    walls[size].append(timing.wall)
                if window_sizes:
                    # The rows the app reads: the head, the window, and the turn that did not fit.
                    reads[size].append(await storage.window_read(conversations[size], 1 + window_sizes[size] + 3))
            if round_number == 0:
                sent = await self._standin_requests()
                window_of = {
                    entry["body"]["messages"][-1]["content"]: len(entry["body"]["messages"]) - 2 for entry in sent
                }
                window_sizes = {size: window_of[content] for size, content in windows.items()}
                await self._standin_post("/_standin/clear")
        await asyncio.sleep(SETTLE_SECONDS)
        cpu = cpu_per_label(marks, self.services["app"].cpu())
        sizes = {}
        for size in plan.sizes:
            sizes[str(size)] = {
                "window_messages": window_sizes[size],
                "wall_ms": stats(walls[size]),
                "cost_ms": stats(walls[size], shift=plan.latency),
                "cpu_ms": cpu[str(size)],
                # From the second round on, once the window is known.
                "storage_read_ms": stats(reads[size]),
            }
            row = sizes[str(size)]
            self.say(
                f"  {size:>6,} messages: turn {row['wall_ms']['median']:.1f} ms median, {row['wall_ms']['p99']:.1f} ms "
                f"p99, CPU {row['cpu_ms']:.1f} ms, window {row['window_messages']} messages; the read alone "
                f"{row['storage_read_ms']['median']:.1f} ms"
            )
        self.figures["length"] = {"model_latency_ms": plan.latency * 1000, "sizes": sizes}

    async def _standin_requests(self) -> list[dict[str, Any]]:
        async with self.sessions["model"].get(self.standins.model_url + "/_standin/requests") as response:
            return await response.json()

    async def _standin_post(self, path: str) -> None:
        async with self.sessions["model"].post(self.standins.model_url + path) as response:
            response.raise_for_status()

    # -- simultaneous turns

    async def concurrency(self) -> None:
        plan = self.plan
        pool = await self.pool("concurrent", max(plan.levels))
        await self.warm("app", pool)
        latency = plan.concurrency_latency
        self.say(f"concurrency: {', '.join(map(str, plan.levels))} simultaneous turns, model latency {latency:g} s")
        levels = {}
        for level in plan.levels:
            walls: dict[str, list[float]] = {side: [] for side in SIDES}
            turns: dict[str, list[float]] = {side: [] for side in SIDES}
            cpu: dict[str, list[float]] = {side: [] for side in SIDES}
            failures = dict.fromkeys(SIDES, 0)
            for repeat in range(plan.concurrency_repeats):
                for side in SIDES if repeat % 2 == 0 else SIDES[::-1]:
                    service = self.services[side]
                    before = service.cpu()
                    started = time.perf_counter()
                    timings = await asyncio.gather(
                        *(
                            self.turn("concurrency", side, "chat", pool[n], turn_text(f"concurrent {level}", latency))
                            for n in range(level)
                        )
                    )
                    walls[side].append(time.perf_counter() - started)
                    turns[side] += [t.wall for t in timings if t is not None]
                    failures[side] += sum(t is None for t in timings)
                    await asyncio.sleep(SETTLE_SECONDS)
                    cpu[side].append((service.cpu() - before) / level)
            levels[str(level)] = {
                side: {
                    "wall_s": round(statistics.median(walls[side]), 3),
                    "ratio": round(statistics.median(walls[side]) / latency, 3),
                    "turn_ms": stats(turns[side]),
                    "cpu_ms": round(statistics.fmean(cpu[side]) * 1000, 2),
                    "failed": failures[side],
                }
                for side in SIDES
            }
            row = levels[str(level)]
            self.say(
                f"  {level:>4} at once: app {row['app']['wall_s']:.2f} s ({row['app']['ratio']:.2f} x ideal), "
                f"forwarder {row['forwarder']['wall_s']:.2f} s ({row['forwarder']['ratio']:.2f} x)"
            )
        self.figures["concurrency"] = {"model_latency_s": latency, "levels": levels}

    # -- cold start

    def imports(self) -> None:
        plan = self.plan
        env = base_env()
        for code in IMPORTS.values():  # compile what has no bytecode yet, outside the clock
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True)
        times: dict[str, list[float]] = {name: [] for name in IMPORTS}
        names = list(IMPORTS)
        for run in range(plan.imports):
            for name in names[run % len(names) :] + names[: run % len(names)]:
                started = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-c", IMPORTS[name]], cwd=ROOT, env=env, check=True, capture_output=True
                )
                times[name].append(time.perf_counter() - started)
        modules = {name: _imported(IMPORTS[name], env) for name in ("function_app", "sdks_and_extension")}
        extra = {m: t for m, t in modules["function_app"].items() if m not in modules["sdks_and_extension"]}
        by_package: dict[str, int] = {}
        for module, self_us in extra.items():
            package = ".".join(module.split(".")[: 2 if module.startswith(("azure.", "azurefunctions.")) else 1])
            by_package[package] = by_package.get(package, 0) + self_us
        self.figures["cold_import"] = {
            **{f"{name}_ms": stats(samples) for name, samples in times.items()},
            "modules": {name: len(found) for name, found in modules.items()},
            "beyond_the_sdks": {
                "modules": len(extra),
                "self_ms": round(sum(extra.values()) / 1000, 1),
                "packages_ms": {
                    package: round(us / 1000, 1)
                    for package, us in sorted(by_package.items(), key=lambda item: -item[1])[:12]
                },
            },
            "unconfigured_imported": sorted(m for m in modules["function_app"] if m.startswith(UNCONFIGURED)),
        }
        cold = self.figures["cold_import"]
        self.say(
            f"cold import: function_app {cold['function_app_ms']['median']:.0f} ms, the SDKs "
            f"{cold['sdks_ms']['median']:.0f} ms ({cold['sdks_and_extension_ms']['median']:.0f} ms with the streams "
            f"extension), the interpreter alone {cold['interpreter_ms']['median']:.0f} ms"
        )

    async def first_requests(self) -> None:
        plan = self.plan
        assert self.azurite is not None
        pool = await self.pool("first", 2)
        results: dict[str, dict[str, list[float]]] = {side: {"listen": [], "first": [], "second": []} for side in SIDES}
        modules = {"app": "chat.local:app", "forwarder": "benchmarks.bench.forwarder:app"}
        for trial in range(plan.starts):
            for side in SIDES if trial % 2 == 0 else SIDES[::-1]:
                service = Service(f"a fresh {side}", modules[side], self.env(self.azurite.connection_string))
                started = time.perf_counter()
                service.start().wait()
                listening = time.perf_counter() - started
                try:
                    async with client_session() as session:
                        first = await timed_turn(
                            session, service.url, "chat", pool[0].id, turn_text("first", plan.latency)
                        )
                        second = await timed_turn(
                            session, service.url, "chat", pool[1].id, turn_text("second", plan.latency)
                        )
                except TurnFailed as e:
                    self.failed("first request", f"{side} chat: {e.label}")
                    continue
                finally:
                    service.stop()
                    service.remove_log()
                results[side]["listen"].append(listening)
                results[side]["first"].append(first.wall)
                results[side]["second"].append(second.wall)
        self.figures["first_request"] = {
            side: {
                "listening_ms": stats(found["listen"]),
                "first_turn_ms": stats(found["first"]),
                "second_turn_ms": stats(found["second"]),
            }
            for side, found in results.items()
        }
        for side in SIDES:
            found = self.figures["first_request"][side]
            self.say(
                f"first request, {side}: listening after {found['listening_ms']['median']:.0f} ms, first turn "
                f"{found['first_turn_ms']['median']:.0f} ms, second {found['second_turn_ms']['median']:.0f} ms"
            )

    # -- memory, and where the CPU goes

    def memory(self) -> None:
        self.figures["memory"] = {side: self.services[side].memory() for side in SIDES}
        self.say(
            f"peak memory: app {self.figures['memory']['app']['peak_mib']} MiB, "
            f"forwarder {self.figures['memory']['forwarder']['peak_mib']} MiB"
        )

    async def profile(self) -> None:
        plan = self.plan
        binary = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
        if not plan.profile_turns or binary is None:
            self.figures["profile"] = None
            return
        pool = await self.pool("profiled", 20)
        await self.warm("app", pool)
        await self.warm("forwarder", pool)
        self.say(f"profile: py-spy on each serving process over {plan.profile_turns} turns of /api/chat")
        profiles = {}
        with tempfile.TemporaryDirectory() as directory:
            for side in SIDES:
                service = self.services[side]
                output = Path(directory) / f"{side}.txt"
                spy = start_py_spy(binary, service.pid, output)
                await asyncio.sleep(2)  # py-spy attaches
                before = service.cpu()
                for number in range(plan.profile_turns):
                    content = turn_text("profiled", plan.latency)
                    await self.turn("profile", side, "chat", pool[number % len(pool)], content)
                await asyncio.sleep(SETTLE_SECONDS)
                used = service.cpu() - before
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
                found = profile_split.split(output.read_text(), ROOT)
                # How much of the process's CPU the samples saw (py-spy misses time outside the GIL,
                # and samples it could not take on a busy machine).
                found["sampled_s"] = round(found["samples"] / PROFILE_RATE, 2)
                found["profiled_cpu_s"] = round(used, 2)
                # CPU per turn as measured unprofiled in the rounds, split by the profile's fractions.
                found["cpu_ms"] = self.figures["doors"]["chat"][side]["cpu_ms"]
                profiles[side] = found
                shares = ", ".join(f"{k} {v:.0%}" for k, v in found["fractions"].items())
                self.say(f"  {side}: {found['samples']} samples: {shares}")
        self.figures["profile"] = profiles

    async def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.figures["machine"] = machine()
        self.figures["plan"] = {"mode": "smoke" if self.smoke else "full", **asdict(self.plan)}
        await self.start()
        try:
            self.server_logs("start")
            for phase, measure in (
                ("rounds", self.rounds),
                ("storage requests", self.storage_requests),
                ("length", self.lengths),
                ("concurrency", self.concurrency),
                ("profile", self.profile),
                ("first request", self.first_requests),
            ):
                await measure()
                self.server_logs(phase)
                if phase == "concurrency":
                    self.memory()
        finally:
            await self.stop()
        self.imports()
        self.figures["errors"] = self.errors
        self.figures["logged"] = self.logged
        self.figures["goals"] = goals(self.figures, self.plan)
        self.figures["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
        self.figures["seconds"] = round(time.perf_counter() - started, 1)
        return self.figures


def _turn_requests(requests: list[StorageRequest], started: float, answered: float, prefix: str) -> dict[str, Any]:
    before = [r for r in requests if r.ended is not None and r.ended <= answered]
    batches = {r.table.removeprefix(prefix): r for r in before if r.kind == "batch"}
    messages, listed = batches.get("messages"), batches.get("conversations")
    return {
        "requests": len(requests),
        "critical_path": sequential_depth(before),
        "after_answer": len(requests) - len(before),
        "list_update_outlasts_transaction": bool(
            messages
            and listed
            and listed.ended is not None
            and messages.ended is not None
            and listed.ended > messages.ended
        ),
        "timeline": [
            {
                "request": r.describe(prefix),
                "start_ms": round((r.started - started) * 1000, 2),
                "end_ms": round(((r.ended or r.started) - started) * 1000, 2),
            }
            for r in requests
        ]
        + [{"request": "answer received", "start_ms": round((answered - started) * 1000, 2)}],
    }


def _imported(code: str, env: dict[str, str]) -> dict[str, int]:
    """The modules a fresh interpreter imports for `code`, with each one's own import time in µs."""
    found = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    modules = {}
    for line in found.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[0].strip().isdigit():
            modules[parts[2].strip()] = int(parts[0])
    return modules
