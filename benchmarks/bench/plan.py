"""What a run measures, and how much of it: the full run, and the smoke run that checks the bench."""

from __future__ import annotations

from dataclasses import dataclass

DOORS = ("chat", "chat_stream", "responses", "responses_stream")
SIDES = ("app", "forwarder")
WORKERS = "workers"  # the app under uvicorn worker processes, one a core (the simultaneous turns)
STREAMED = frozenset({"chat_stream", "responses_stream"})
# The cold imports compared, each in a fresh interpreter.
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

SETTLE_SECONDS = 0.3  # after a phase, for what a server still does after its last answer
