"""The phases that time turns: storage requests per continuing turn, cost against conversation length,
simultaneous turns."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from typing import TYPE_CHECKING, Any

from benchmarks.bench.client import Timing, turn_text
from benchmarks.bench.figures import cpu_per_label, stats
from benchmarks.bench.plan import DOORS, SETTLE_SECONDS, WORKERS
from benchmarks.bench.storage import LONG_ANSWER, LONG_QUESTION
from benchmarks.bench.storage_proxy import StorageRequest, sequential_depth
from chat.engine.history import Conversation
from chat.web.callers import APP_OWNER

if TYPE_CHECKING:
    from benchmarks.bench.phases import Bench


async def storage_requests(bench: Bench) -> None:
    plan, proxy = bench.plan, bench.proxy
    assert proxy is not None
    pool = await bench.pool("counted", max(2, plan.count_turns))
    bench.say(f"storage requests: {plan.count_turns} continuing turns a door through the recording proxy")
    for door in DOORS:  # the counted app's first turns: its token, its tables
        await bench.turn("warm-up", "counted", door, pool[0], turn_text("warm-up", plan.latency))
    await bench.warm("counted", pool)
    results: dict[str, Any] = {}
    for door in DOORS:
        turns = []
        for number in range(plan.count_turns):
            started = time.monotonic()
            content = turn_text(f"count {number}", plan.latency)
            done = await bench.turn("storage requests", "counted", door, pool[number % len(pool)], content)
            answered = time.monotonic()
            await asyncio.sleep(SETTLE_SECONDS)
            if done is not None:
                turns.append(_turn_requests(proxy.requests(since=started), started, answered, bench.prefix))
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
        bench.say(
            f"  {door:17} {results[door]['requests']:g} requests, {results[door]['critical_path']:g} one after "
            f"another; the list update outlasts the transaction in "
            f"{results[door]['list_update_outlasts_transaction']:.0%} of turns"
        )
    bench.figures["storage_requests"] = results


async def lengths(bench: Bench) -> None:
    plan, storage = bench.plan, bench.storage
    assert storage is not None
    conversations = {
        size: Conversation(APP_OWNER, f"bench-length-{size}-{uuid.uuid4().hex[:8]}") for size in plan.sizes
    }
    for size, conversation in conversations.items():
        started = time.perf_counter()
        await storage.seed(conversation, size // 2, LONG_QUESTION, LONG_ANSWER)
        bench.say(f"length: seeded {size:,} messages in {time.perf_counter() - started:.1f} s")

    async def timed(size: int, content: str) -> Timing | None:
        timing = await bench.turn("length", "app", "chat", conversations[size], content)
        if timing is not None:  # a failed turn stored nothing
            await storage.remove_turn(conversations[size], size // 2 + 1)
        return timing

    for size in plan.sizes:
        await timed(size, turn_text("warm-up", plan.latency))
    await bench.standin_post("/_standin/clear")
    walls: dict[int, list[float]] = {size: [] for size in plan.sizes}
    reads: dict[int, list[float]] = {size: [] for size in plan.sizes}
    windows: dict[int, str] = {}
    window_sizes: dict[int, int] = {}
    marks: list[tuple[str, float]] = []
    for round_number in range(plan.length_rounds):
        order = list(plan.sizes)
        bench.rng.shuffle(order)
        for size in order:
            content = turn_text(f"length {round_number}", plan.latency)
            windows.setdefault(size, content)
            marks.append((str(size), bench.services["app"].cpu()))
            timing = await timed(size, content)
            if timing is not None:
                walls[size].append(timing.wall)
            if window_sizes:
                # The rows the app reads: the head, the window, and the turn that did not fit.
                reads[size].append(await storage.window_read(conversations[size], 1 + window_sizes[size] + 3))
        if round_number == 0:
            sent = await bench.standin_requests()
            window_of = {entry["body"]["messages"][-1]["content"]: len(entry["body"]["messages"]) - 2 for entry in sent}
            window_sizes = {size: window_of[content] for size, content in windows.items()}
            await bench.standin_post("/_standin/clear")
    await asyncio.sleep(SETTLE_SECONDS)
    cpu = cpu_per_label(marks, bench.services["app"].cpu())
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
        bench.say(
            f"  {size:>6,} messages: turn {row['wall_ms']['median']:.1f} ms median, {row['wall_ms']['p99']:.1f} ms "
            f"p99, CPU {row['cpu_ms']:.1f} ms, window {row['window_messages']} messages; the read alone "
            f"{row['storage_read_ms']['median']:.1f} ms"
        )
    bench.figures["length"] = {"model_latency_ms": plan.latency * 1000, "sizes": sizes}


async def concurrency(bench: Bench) -> None:
    """Simultaneous turns on the app as one process, on the app under as many uvicorn worker
    processes as the machine has cores (the host's own scale-out: FUNCTIONS_WORKER_PROCESS_COUNT,
    or more instances, in Azure), and on the forwarder as one process."""
    workers = bench.start_workers()
    try:
        await _concurrency(bench, workers)
    finally:
        await bench.stop_workers()


async def _concurrency(bench: Bench, workers: int) -> None:
    plan = bench.plan
    pool = await bench.pool("concurrent", max(plan.levels))
    await bench.warm("app", pool)
    await bench.warm(WORKERS, pool)
    sides = ("app", WORKERS, "forwarder")
    latency = plan.concurrency_latency
    bench.say(
        f"concurrency: {', '.join(map(str, plan.levels))} simultaneous turns, model latency {latency:g} s; "
        f"the app as one process and under {workers} worker processes"
    )
    levels = {}
    for level in plan.levels:
        walls: dict[str, list[float]] = {side: [] for side in sides}
        turns: dict[str, list[float]] = {side: [] for side in sides}
        cpu: dict[str, list[float]] = {side: [] for side in sides}
        failures = dict.fromkeys(sides, 0)
        for repeat in range(plan.concurrency_repeats):
            for side in sides if repeat % 2 == 0 else sides[::-1]:
                service = bench.services[side]
                before = service.cpu()
                started = time.perf_counter()
                timings = await asyncio.gather(
                    *(
                        bench.turn("concurrency", side, "chat", pool[n], turn_text(f"concurrent {level}", latency))
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
            for side in sides
        }
        row = levels[str(level)]
        bench.say(
            f"  {level:>4} at once: app {row['app']['wall_s']:.2f} s ({row['app']['ratio']:.2f} x ideal), "
            f"{workers} workers {row[WORKERS]['wall_s']:.2f} s ({row[WORKERS]['ratio']:.2f} x), "
            f"forwarder {row['forwarder']['wall_s']:.2f} s ({row['forwarder']['ratio']:.2f} x)"
        )
    bench.figures["concurrency"] = {"model_latency_s": latency, "workers": workers, "levels": levels}


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
