"""A run: the components started, then each phase of measurement in turn, its figures kept."""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import aiohttp

from benchmarks.bench import process_phases, round_phases, turn_phases
from benchmarks.bench.client import DirectModel, Timing, TurnFailed, client_session, timed_turn, turn_text
from benchmarks.bench.figures import machine
from benchmarks.bench.goals import goals
from benchmarks.bench.plan import WORKERS, Plan
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
        # No queue service: locally a server polls the background responses' queue (chat/polling.py)
        # about every 2 s, a cost of no turn's (in Azure the host's queue trigger polls, not the
        # worker), which the CPU charged to each turn would otherwise take in.
        without_queue = re.sub(r"QueueEndpoint=[^;]*;?", "", connection_string)
        return {
            **base_env(),
            **self.standins.env,
            "CHAT_STORAGE_CONNECTION_STRING": without_queue,
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

    def start_workers(self) -> int:
        """The app under one uvicorn worker process a core (at least two), as scripts/run serves
        it with WEB_CONCURRENCY set; how many."""
        assert self.azurite is not None
        workers = max(2, os.cpu_count() or 1)
        service = Service(
            f"the app, {workers} workers", "chat.local:app", self.env(self.azurite.connection_string), workers=workers
        )
        self.services[WORKERS] = service.start().wait()
        self.sessions[WORKERS] = client_session()
        return workers

    async def stop_workers(self) -> None:
        self.services.pop(WORKERS).stop()
        await self.sessions.pop(WORKERS).close()

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
                ("rounds", lambda: round_phases.rounds(self)),
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
