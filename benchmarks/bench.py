"""What a turn costs on top of the model: the app beside a stateless forwarder, on this machine.

    scripts/bench [--smoke] [--json PATH] [--images DIR]

Starts Azurite, the model and managed-identity stand-ins (`python -m tests.standins`) and the app
under uvicorn as scripts/run serves it, twice: once straight on Azurite, for every timing, and
once through a loopback proxy that records each storage request with its timestamps. Beside them
runs the baseline, benchmarks/forwarder.py: the same openai SDK call, no history, no storage, in a
process of its own like the app's. The stand-in answers after a set latency (the `[[sleep:S]]`
directive in each message), so what a side takes beyond it is that side's overhead.

Sides are interleaved (every round runs one sample of each, in a shuffled order), so drift of the
shared machine hits all alike. Measured, medians and p99:

- per-turn overhead over the stand-in's own latency, on both doors: AI Chat Protocol `/api/chat`
  and `/api/chat/stream` (to the first delta), OpenAI's `/api/v1/responses` with `conversation`,
  plain and `stream: true`; the forwarder's on the same doors; the stand-in timed alone;
- the storage floor: the same history read and one transaction made directly with the SDK on the
  same Azurite, with the rows the app writes: wall time and CPU;
- CPU per turn of each serving process, from /proc/<pid>/stat (utime + stime) between its turns;
- storage requests per continuing turn, and how many run one after another;
- turn cost in conversations of 100, 1,000 and 10,000 messages, the window full in each;
- 1, 16, 64 and 128 simultaneous turns with a 2 s model: wall time against the ideal;
- cold start: `import function_app` against importing the SDKs it needs, in fresh interpreters,
  and the first request after start;
- peak memory (VmHWM) of each serving process;
- where a turn's CPU goes: py-spy samples of the serving process, split by side.

Then it prints each goal's ratio with PASS or MISS, writes every figure to a JSON file (default
.bench/bench.json) and, but for --smoke, draws the pictures (default into .bench/). `--smoke` runs
few turns on small sizes, needs neither matplotlib nor py-spy, and takes a minute or two. Absolute
figures are Azurite on loopback on this machine, not Azure: compare the sides, not milliseconds
with a deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from azure.core import MatchConditions  # noqa: E402
from azure.data.tables import UpdateMode  # noqa: E402
from azure.data.tables.aio import TableClient  # noqa: E402

from benchmarks import profile_split  # noqa: E402
from benchmarks.storage_proxy import RecordingProxy, StorageRequest, sequential_depth  # noqa: E402
from chat.dependencies import _storage_options  # noqa: E402
from chat.engine.history import Conversation, NewTurn, utc_now  # noqa: E402
from chat.engine.items import Usage, message  # noqa: E402
from chat.settings import DEFAULT_API_VERSION, DEFAULT_SYSTEM_PROMPT  # noqa: E402
from chat.storage import keys  # noqa: E402
from chat.storage.conversations import ConversationList  # noqa: E402
from chat.storage.limits import MAX_TRANSACTION_ENTITIES  # noqa: E402
from chat.storage.messages import QUERY_PAGE_ROWS, HistoryStore, _head_entity  # noqa: E402
from chat.storage.tables import Table, range_rows  # noqa: E402
from chat.web.callers import APP_OWNER  # noqa: E402
from tests.conftest import Azurite, free_port, wait_for_port  # noqa: E402

DOORS = ("chat", "chat_stream", "responses", "responses_stream")
SIDES = ("app", "forwarder")
STREAMED = frozenset({"chat_stream", "responses_stream"})
SDK_IMPORTS = "import azure.functions, openai, azure.identity.aio, azure.data.tables.aio, aiohttp, pydantic"
# function_app.py's handlers take the HTTP streams extension's types: an SDK it needs for streaming.
EXTENSION_IMPORT = "azurefunctions.extensions.http.fastapi"
IMPORTS = {
    "function_app": "import function_app",
    "sdks": SDK_IMPORTS,
    "sdks_and_extension": f"{SDK_IMPORTS}, {EXTENSION_IMPORT}",
    "interpreter": "pass",
}
# What the app would import only if it were configured: telemetry.
UNCONFIGURED = ("azure.monitor.opentelemetry", "opentelemetry.sdk")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CONNECTION_IDLE_SECONDS = 2  # the client lets go of idle connections before uvicorn's 5 s do
SETTLE_SECONDS = 0.3
PROFILE_RATE = 250  # py-spy samples a second  # after a phase, for what a server still does after its last answer
QUESTION = "Question {n}: how does the partition layout keep a long conversation's reads short?"
ANSWER = (
    "Answer {n}: RowKeys sort newest first, so the history query reads the newest turns and stops "
    "once the token budget is spent; the rest of the conversation is never read. " * 2
)
# Turns of the long conversations: about 1,000 estimated tokens each, so 32 of them fill the
# default budget of 32,000 and 100 messages are past a full window.
LONG_QUESTION = "Question {n}: " + "why does a turn read only the newest rows of its partition? " * 10
LONG_ANSWER = "Answer {n}: " + "the history query stops once the token budget is spent, whatever the length. " * 31


@dataclass(frozen=True)
class Plan:
    rounds: int  # rounds of the interleaved sides
    pool: int  # conversations the rounds' turns go to, in turn
    seeded_turns: int  # turns each of them has before the benchmark
    latency: float  # the model's latency in the rounds and the length runs, seconds
    count_turns: int  # turns per door through the recording proxy
    sizes: tuple[int, ...]  # conversation lengths, messages
    length_rounds: int
    levels: tuple[int, ...]  # simultaneous turns
    concurrency_latency: float
    concurrency_repeats: int
    imports: int  # fresh interpreters of each import line
    starts: int  # fresh starts of each server
    profile_turns: int  # 0: no profile
    warmup: int


FULL = Plan(
    rounds=150,
    pool=100,
    seeded_turns=3,
    latency=0.05,
    count_turns=20,
    sizes=(100, 1_000, 10_000),
    length_rounds=30,
    levels=(1, 16, 64, 128),
    concurrency_latency=2.0,
    concurrency_repeats=3,
    imports=10,
    starts=3,
    profile_turns=150,
    warmup=5,
)
SMOKE = Plan(
    rounds=4,
    pool=8,
    seeded_turns=3,
    latency=0.05,
    count_turns=2,
    sizes=(100, 200),
    length_rounds=2,
    levels=(1, 4),
    concurrency_latency=0.3,
    concurrency_repeats=1,
    imports=1,
    starts=1,
    profile_turns=0,
    warmup=1,
)


# -- figures -----------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest rank: the smallest sample with at least `fraction` of the samples at or below it."""
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def stats(samples: Sequence[float], scale: float = 1000.0, shift: float = 0.0) -> dict[str, float]:
    """Median and p99 of `samples` (seconds) less `shift`, in ms by default."""
    ordered = sorted(samples)
    return {
        "median": round((statistics.median(ordered) - shift) * scale, 2),
        "p99": round((percentile(ordered, 0.99) - shift) * scale, 2),
        "n": len(ordered),
    }


# -- processes ---------------------------------------------------------------------------------


def _base_env() -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(ROOT),
    }


class Service:
    """A server under uvicorn, as scripts/run starts the app: the app, or the forwarder."""

    def __init__(self, name: str, module: str, env: dict[str, str]) -> None:
        self.name = name
        self.module = module
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        # What the server logs (its warnings: a storage request that failed, a list update lost).
        self.log = Path(tempfile.mkstemp(prefix="bench-", suffix=".log")[1])
        self._log_read = 0

    def start(self) -> Service:
        command = [sys.executable, "-m", "uvicorn", self.module, "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "--no-access-log", "--log-level", "warning"], cwd=ROOT, env=self.env, stderr=log
            )
        return self

    def new_log_lines(self) -> list[str]:
        """What the server logged since the last call."""
        with self.log.open("rb") as log:
            log.seek(self._log_read)
            text = log.read()
        self._log_read += len(text)
        return text.decode(errors="replace").splitlines()

    def wait(self) -> Service:
        assert self.process is not None
        wait_for_port(self.port, self.process, self.name)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu(self) -> float:
        """CPU seconds the process has used: utime + stime of /proc/<pid>/stat, every thread's."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def memory(self) -> dict[str, float]:
        """Peak and current resident memory, MiB: VmHWM and VmRSS of /proc/<pid>/status."""
        found = dict(re.findall(r"^(VmHWM|VmRSS):\s+(\d+) kB", Path(f"/proc/{self.pid}/status").read_text(), re.M))
        return {"peak_mib": round(int(found["VmHWM"]) / 1024, 1), "rss_mib": round(int(found["VmRSS"]) / 1024, 1)}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def remove_log(self) -> None:
        self.log.unlink(missing_ok=True)


class StandInProcess:
    """The model and managed-identity stand-ins in a process of their own, as scripts/run runs them."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.env: dict[str, str] = {}

    def start(self) -> StandInProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.standins", "--host", "127.0.0.1"],
            cwd=ROOT,
            env=_base_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        while len(self.env) < 4:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("the stand-ins exited before they said where they listen")
            name, _, value = line.strip().partition("=")
            self.env[name] = value
        return self

    @property
    def model_url(self) -> str:
        return self.env["AZURE_OPENAI_ENDPOINT"]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None


# -- a turn, as a client makes it --------------------------------------------------------------


class TurnFailed(RuntimeError):
    """A turn answered with an error: counted in the figures of its phase, not timed."""

    def __init__(self, door: str, status: int, code: str) -> None:
        super().__init__(f"{door} answered {status} {code}")
        self.label = f"{status} {code}"


@dataclass
class Timing:
    wall: float  # seconds until the whole answer
    first: float | None = None  # seconds until the first content delta of a stream


def _request(door: str, conversation_id: str, content: str) -> tuple[str, dict[str, Any]]:
    if door in ("chat", "chat_stream"):
        body = {"messages": [{"role": "user", "content": content}], "sessionState": conversation_id}
        return ("/api/chat/stream" if door == "chat_stream" else "/api/chat"), body
    body = {"model": "chat", "input": content, "conversation": conversation_id}
    if door == "responses_stream":
        body["stream"] = True
    return "/api/v1/responses", body


def _is_first_delta(door: str, line: bytes) -> bool:
    if door == "chat_stream":
        return line.startswith(b'{"delta":{"content"')
    return line.startswith(b"event: response.output_text.delta")


async def timed_turn(
    session: aiohttp.ClientSession, base: str, door: str, conversation_id: str, content: str
) -> Timing:
    """One turn on `door`, timed to the answer's end and, streamed, to its first delta."""
    path, body = _request(door, conversation_id, content)
    started = time.perf_counter()
    first = None
    async with session.post(base + path, json=body) as response:
        if response.status != 200:
            raise TurnFailed(door, response.status, _error_code(await response.text()))
        if door not in STREAMED:
            document = await response.json()
            if door == "responses" and document.get("status") != "completed":
                raise RuntimeError(f"responses answered {document.get('status')}")
            return Timing(time.perf_counter() - started)
        last = b""
        async for line in response.content:
            if first is None and _is_first_delta(door, line):
                first = time.perf_counter() - started
            if line.strip():
                last = line
    wall = time.perf_counter() - started
    finished = b'"context"' in last if door == "chat_stream" else b'"response.completed"' in last
    if first is None or not finished:
        raise TurnFailed(door, 200, "stream " + _error_code(last.decode(errors="replace").removeprefix("data: ")))
    return Timing(wall, first)


def _error_code(body: str) -> str:
    """The code of an error body of either door (or of a stream's error line), else its first words."""
    try:
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        return body[:80]
    return str(error.get("code") or error.get("type") or body[:80])


class DirectModel:
    """The model stand-in called straight, with a token of the identity stand-in: its own latency."""

    def __init__(self, session: aiohttp.ClientSession, standins: StandInProcess) -> None:
        self.session = session
        self.standins = standins
        deployment = standins.env["AZURE_OPENAI_CHAT_DEPLOYMENT"]
        self.url = (
            f"{standins.model_url}/openai/deployments/{deployment}/chat/completions?api-version={DEFAULT_API_VERSION}"
        )
        self.deployment = deployment
        self.token = ""

    async def authenticate(self) -> None:
        async with self.session.get(
            self.standins.env["IDENTITY_ENDPOINT"],
            params={"api-version": "2019-08-01", "resource": "https://cognitiveservices.azure.com"},
            headers={"X-IDENTITY-HEADER": self.standins.env["IDENTITY_HEADER"]},
        ) as response:
            response.raise_for_status()
            self.token = (await response.json())["access_token"]

    async def call(self, content: str, *, stream: bool) -> Timing:
        body: dict[str, Any] = {
            "model": self.deployment,
            "messages": [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, {"role": "user", "content": content}],
        }
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        started = time.perf_counter()
        first = None
        async with self.session.post(
            self.url, json=body, headers={"Authorization": f"Bearer {self.token}"}
        ) as response:
            response.raise_for_status()
            if not stream:
                await response.json()
                return Timing(time.perf_counter() - started)
            async for line in response.content:
                if first is None and line.startswith(b"data: {"):
                    choices = json.loads(line[6:]).get("choices") or [{}]
                    if (choices[0].get("delta") or {}).get("content"):
                        first = time.perf_counter() - started
        return Timing(time.perf_counter() - started, first)


def _client(limit: int = 0) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, keepalive_timeout=CONNECTION_IDLE_SECONDS),
        timeout=aiohttp.ClientTimeout(total=300),
    )


def _content(label: str, latency: float) -> str:
    return f"benchmark {label} {uuid.uuid4().hex} [[sleep:{latency:g}]]"


# -- storage: seeding, the floor, putting a conversation back ----------------------------------


class Storage:
    """The benchmark's own clients of the app's two tables, straight on Azurite."""

    def __init__(self, connection_string: str, prefix: str) -> None:
        # The clients the app makes (chat/dependencies.py), so the storage floor is the SDK as the
        # app runs it.
        options = _storage_options(os.environ)
        self.messages = TableClient.from_connection_string(connection_string, table_name=f"{prefix}messages", **options)
        self.conversations = TableClient.from_connection_string(
            connection_string, table_name=f"{prefix}conversations", **options
        )
        self.store = HistoryStore(Table(self.messages))
        self.list = ConversationList(Table(self.conversations))

    async def create(self) -> None:
        await Table(self.messages).ready()
        await Table(self.conversations).ready()

    async def close(self) -> None:
        await self.messages.close()
        await self.conversations.close()

    async def seed(self, conversation: Conversation, turns: int, question: str, answer: str) -> None:
        """A conversation of `turns` turns, its rows built by the store's own code and written a
        transaction of 100 entities at a time (a transaction per turn would take minutes for
        10,000 messages), its head, and its entry in the owner's list."""
        entities = []
        for number in range(1, turns + 1):
            turn = NewTurn(
                inputs=(message("user", question.format(n=number)),),
                outputs=(message("assistant", answer.format(n=number)),),
                finish_reason="stop",
                usage=Usage(prompt_tokens=100, completion_tokens=60),
            )
            entities += self.store._turn_entities(conversation, number, turn)
        entities.append(_head_entity(conversation.key, turns, 0, int(time.time())))
        for start in range(0, len(entities), MAX_TRANSACTION_ENTITIES):
            batch = entities[start : start + MAX_TRANSACTION_ENTITIES]
            await self.messages.submit_transaction([("create", entity) for entity in batch])
        await self.list.record_activity(
            conversation, floor=0, first_message=question.format(n=1), at=utc_now(), message_count=2 * turns
        )

    async def seed_many(self, conversations: Sequence[Conversation], turns: int, question: str, answer: str) -> None:
        limit = asyncio.Semaphore(8)

        async def one(conversation: Conversation) -> None:
            async with limit:
                await self.seed(conversation, turns, question, answer)

        await asyncio.gather(*(one(conversation) for conversation in conversations))

    async def floor(self, conversation: Conversation, content: str) -> tuple[float, float, float, float]:
        """The storage floor of one turn: the history read (the app's query, from the head, in
        pages from 32 rows) and the turn's transaction (its rows, built by the store's own code
        outside the clocks, inserted with the head replaced under its ETag), made directly with
        the SDK. Returns the read's and the transaction's seconds, then their CPU seconds."""
        cpu, started = time.process_time(), time.perf_counter()
        rows = [
            entity
            async for entity in self.messages.query_entities(
                "PartitionKey eq @pk and RowKey ge @start and RowKey lt @end",
                parameters={"pk": conversation.key, "start": keys.HEAD_ROW_KEY, "end": keys.TURN_END},
                results_per_page=QUERY_PAGE_ROWS,
            )
        ]
        read, read_cpu = time.perf_counter() - started, time.process_time() - cpu
        head = rows[0]
        number = int(head["n"]) + 1
        turn = NewTurn(
            inputs=(message("user", content),),
            outputs=(message("assistant", f"Echo #{2 * (number - 1)}: {content}"),),
            finish_reason="stop",
            usage=Usage(prompt_tokens=40, completion_tokens=12),
        )
        operations: list[Any] = [("create", entity) for entity in self.store._turn_entities(conversation, number, turn)]
        condition = {
            "mode": UpdateMode.REPLACE,
            "etag": head.metadata["etag"],
            "match_condition": MatchConditions.IfNotModified,
        }
        operations.append(("update", {**head, "n": number}, condition))
        cpu, started = time.process_time(), time.perf_counter()
        await self.messages.submit_transaction(operations)
        return read, time.perf_counter() - started, read_cpu, time.process_time() - cpu

    async def window_read(self, conversation: Conversation, rows: int) -> float:
        """The history read alone, as the app makes it (from the head, in pages of 32, then 64 rows,
        ...) for `rows` rows: seconds."""
        started = time.perf_counter()
        read = 0
        async for _ in range_rows(
            self.messages, conversation.key, keys.HEAD_ROW_KEY, keys.TURN_END, first_page=QUERY_PAGE_ROWS
        ):
            read += 1
            if read == rows:
                break
        return time.perf_counter() - started

    async def remove_turn(self, conversation: Conversation, number: int) -> None:
        """Delete turn `number` (its rows and their index rows) and put the head back, so the next
        timed turn sees the same conversation."""
        start = keys.turn_prefix(number)
        rows = self.messages.query_entities(
            "PartitionKey eq @pk and RowKey ge @start and RowKey lt @end",
            parameters={"pk": conversation.key, "start": start, "end": start + "z"},
            select=["RowKey", "id"],
        )
        async for entity in rows:
            await self.messages.delete_entity(conversation.key, entity["RowKey"])
            if entity.get("id"):
                await self.messages.delete_entity(conversation.key, keys.item_index_row_key(entity["id"]))
        head = await self.messages.get_entity(conversation.key, keys.HEAD_ROW_KEY)
        await self.messages.update_entity({**head, "n": number - 1}, mode=UpdateMode.REPLACE)


# -- the run -----------------------------------------------------------------------------------


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
            **_base_env(),
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
            "forwarder": Service("the forwarder", "benchmarks.forwarder:app", direct_env).start(),
            "counted": Service("the counted app", "chat.local:app", self.env(self.connection_string(self.proxy.port))),
        }
        self.services["counted"].start()
        for service in self.services.values():
            service.wait()
        self.sessions = {name: _client() for name in (*self.services, "model")}
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
                await self.turn("warm-up", side, "chat", conversation, _content("warm-up", 0))

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
                await self._sample(side, door, conversation(side), _content("warm-up", plan.latency))
        timings: dict[tuple[str, str], list[Timing]] = {entry: [] for entry in entries}
        floor: list[tuple[float, float, float, float]] = []
        marks: dict[str, list[tuple[str, float]]] = {side: [] for side in SIDES}
        for round_number in range(plan.rounds):
            order = entries[:]
            self._rng.shuffle(order)
            for side, door in order:
                content = _content(f"round {round_number}", plan.latency)
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
            await self.turn("warm-up", "counted", door, pool[0], _content("warm-up", plan.latency))
        await self.warm("counted", pool)
        results: dict[str, Any] = {}
        for door in DOORS:
            turns = []
            for number in range(plan.count_turns):
                started = time.monotonic()
                content = _content(f"count {number}", plan.latency)
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
            await timed(size, _content("warm-up", plan.latency))
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
                content = _content(f"length {round_number}", plan.latency)
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
                            self.turn("concurrency", side, "chat", pool[n], _content(f"concurrent {level}", latency))
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
        env = _base_env()
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
        modules = {"app": "chat.local:app", "forwarder": "benchmarks.forwarder:app"}
        for trial in range(plan.starts):
            for side in SIDES if trial % 2 == 0 else SIDES[::-1]:
                service = Service(f"a fresh {side}", modules[side], self.env(self.azurite.connection_string))
                started = time.perf_counter()
                service.start().wait()
                listening = time.perf_counter() - started
                try:
                    async with _client() as session:
                        first = await timed_turn(
                            session, service.url, "chat", pool[0].id, _content("first", plan.latency)
                        )
                        second = await timed_turn(
                            session, service.url, "chat", pool[1].id, _content("second", plan.latency)
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
        py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
        if not plan.profile_turns or py_spy is None:
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
                spy = _py_spy(py_spy, service.pid, output)
                await asyncio.sleep(2)  # py-spy attaches
                before = service.cpu()
                for number in range(plan.profile_turns):
                    content = _content("profiled", plan.latency)
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

    # -- goals

    def goals(self) -> list[dict[str, Any]]:
        figures, plan = self.figures, self.plan
        doors, floor = figures["doors"], figures["storage_floor"]
        goals = []

        def goal(name: str, ratio: float, limit: float, detail: str) -> None:
            goals.append(
                {"goal": name, "ratio": round(ratio, 3), "limit": limit, "pass": ratio <= limit, "detail": detail}
            )

        for door in DOORS:
            app, forwarder = doors[door]["app"]["cpu_ms"], doors[door]["forwarder"]["cpu_ms"]
            goal(
                f"CPU per turn, {door}",
                app / (forwarder + floor["cpu_ms"]),
                1.1,
                f"app {app:.1f} ms / (forwarder {forwarder:.1f} + storage floor {floor['cpu_ms']:.1f} ms)",
            )
        for door in ("chat", "responses"):
            app, forwarder = (doors[door][side]["overhead_ms"]["median"] for side in SIDES)
            allowed = forwarder + 1.1 * floor["total_ms"]["median"]
            goal(
                f"overhead, {door}",
                app / allowed,
                1.0,
                f"app {app:.1f} ms / (forwarder {forwarder:.1f} + 1.1 x floor {floor['total_ms']['median']:.1f} ms)",
            )
        counted = figures["storage_requests"]
        for door in DOORS:
            found = counted[door]
            goal(
                f"storage round trips on the critical path, {door}",
                found["critical_path"] / 2,
                1.0,
                f"{found['critical_path']:g} one after another (at most 2; median of the turns counted)",
            )
            goal(
                f"storage requests per continuing turn, {door}",
                found["requests"] / 3,
                1.0,
                f"{found['requests']:g} requests in all (at most 3; median of the turns counted)",
            )
        sizes = figures["length"]["sizes"]
        smallest, largest = str(min(plan.sizes)), str(max(plan.sizes))
        goal(
            f"flat: {int(largest):,} messages against {int(smallest):,}",
            sizes[largest]["cost_ms"]["median"] / sizes[smallest]["cost_ms"]["median"],
            1.1,
            f"turn cost {sizes[largest]['cost_ms']['median']:.1f} / {sizes[smallest]['cost_ms']['median']:.1f} ms "
            f"(wall less the model's {plan.latency * 1000:g} ms), windows {sizes[largest]['window_messages']} and "
            f"{sizes[smallest]['window_messages']} messages",
        )
        level = "64" if 64 in plan.levels else str(max(plan.levels))
        row = figures["concurrency"]["levels"][level]
        goal(
            f"{level} simultaneous turns",
            row["app"]["ratio"] - row["forwarder"]["ratio"],
            0.15,
            f"app {row['app']['ratio']:.2f} x ideal against the forwarder's {row['forwarder']['ratio']:.2f} x "
            "(the ratio is the difference, at most 0.15)",
        )
        for door in ("chat_stream", "responses_stream"):
            app, forwarder = (doors[door][side]["overhead_ms"]["median"] for side in SIDES)
            allowed = forwarder + floor["read_ms"]["median"]
            goal(
                f"first streamed delta, {door}",
                app / allowed,
                1.0,
                f"app {app:.1f} ms / (forwarder {forwarder:.1f} + one history read "
                f"{floor['read_ms']['median']:.1f} ms)",
            )
        cold = figures["cold_import"]
        goal(
            "cold import",
            cold["function_app_ms"]["median"] / cold["sdks_ms"]["median"],
            1.0,
            f"import function_app {cold['function_app_ms']['median']:.0f} ms / "
            f"the SDKs {cold['sdks_ms']['median']:.0f} ms"
            f" ({cold['sdks_and_extension_ms']['median']:.0f} ms with {EXTENSION_IMPORT}); "
            f"unconfigured telemetry imported: {', '.join(cold['unconfigured_imported']) or 'none'}",
        )
        return goals

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
        self.figures["goals"] = self.goals()
        self.figures["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
        self.figures["seconds"] = round(time.perf_counter() - started, 1)
        return self.figures


def _py_spy(py_spy: str, pid: int, output: Path) -> subprocess.Popen:
    """py-spy sampling a running process until interrupted, without pausing it: the raw stacks of
    the thread that holds the GIL, so the samples follow the process's Python CPU, not its waiting
    (a thread blocked in epoll or on a queue holds no GIL)."""
    command = [py_spy, "record", "--pid", str(pid), "--rate", str(PROFILE_RATE), "--format", "raw", "--gil"]
    command.append("--full-filenames")
    return subprocess.Popen(
        [*command, "--nonblocking", "--output", str(output)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def cpu_per_label(marks: list[tuple[str, float]], final: float) -> dict[str, float]:
    """CPU per turn by label, ms: each turn is charged the process's CPU from its start to the next
    turn's start on the same process, so what a server does after its answer is counted too."""
    spent: dict[str, float] = {}
    counts: dict[str, int] = {}
    for index, (label, at) in enumerate(marks):
        following = marks[index + 1][1] if index + 1 < len(marks) else final
        spent[label] = spent.get(label, 0.0) + following - at
        counts[label] = counts.get(label, 0) + 1
    return {label: round(spent[label] / counts[label] * 1000, 2) for label in spent}


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


def machine() -> dict[str, Any]:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    azurite = json.loads((ROOT / "node_modules" / "azurite" / "package.json").read_text())["version"]
    return {
        "cores": os.cpu_count(),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "azurite": azurite,
        "platform": platform.platform(),
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }


def print_goals(goals: list[dict[str, Any]]) -> None:
    print("\ngoals", flush=True)
    for found in goals:
        verdict = "PASS" if found["pass"] else "MISS"
        print(f"  {verdict}  {found['goal']}: {found['ratio']:.3f} (limit {found['limit']:g}); {found['detail']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="few turns on small sizes: checks the bench, not the app")
    parser.add_argument("--json", type=Path, help="where the figures go (default .bench/bench.json or smoke.json)")
    parser.add_argument("--images", type=Path, default=ROOT / ".bench", help="where the pictures go (not with --smoke)")
    args = parser.parse_args(argv)
    output = args.json or ROOT / ".bench" / ("smoke.json" if args.smoke else "bench.json")
    figures = asyncio.run(Bench(SMOKE if args.smoke else FULL, args.smoke).run())
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(figures, indent=1) + "\n")
    print_goals(figures["goals"])
    print(f"\nfigures in {output} ({figures['seconds']:.0f} s)")
    if not args.smoke:
        from benchmarks import plots

        for path in plots.draw(figures, args.images):
            print(f"picture {path}")


if __name__ == "__main__":
    main()
