"""The rounds phase: one turn of every side (the model alone, the storage floor, the app and the
forwarder on each door) in a shuffled order, round after round: overhead, the storage floor, CPU per turn."""

from __future__ import annotations

import asyncio
import statistics
from typing import TYPE_CHECKING, Any

from benchmarks.bench.client import Timing, turn_text
from benchmarks.bench.figures import cpu_per_label, stats
from benchmarks.bench.plan import DOORS, SETTLE_SECONDS, SIDES, STREAMED
from chat.engine.history import Conversation

if TYPE_CHECKING:
    from benchmarks.bench.phases import Bench


async def rounds(bench: Bench) -> None:
    """Rounds of one turn of every side in a shuffled order: overhead, the storage floor, CPU per turn."""
    plan, storage, direct = bench.plan, bench.storage, bench.direct
    assert storage is not None and direct is not None
    pool = await bench.pool("rounds", plan.pool)
    # The floor's turns go to conversations of their own, alike: a head the floor changed
    # would make the app read a window it keeps from storage again.
    pools = {"floor": await bench.pool("floor", plan.pool), "app": pool}
    used = dict.fromkeys(pools, 0)
    bench.say(f"rounds: {plan.rounds} of every side, model latency {plan.latency * 1000:g} ms")
    entries: list[tuple[str, str]] = [("model", "chat"), ("model", "chat_stream"), ("floor", "")]
    entries += [(side, door) for side in SIDES for door in DOORS]

    def conversation(side: str) -> Conversation:
        name = "floor" if side == "floor" else "app"
        used[name] += 1
        return pools[name][used[name] % len(pools[name])]

    await bench.warm("app", pool)
    for _ in range(plan.warmup):
        for side, door in entries:
            await sample(bench, side, door, conversation(side), turn_text("warm-up", plan.latency))
    timings: dict[tuple[str, str], list[Timing]] = {entry: [] for entry in entries}
    floor: list[tuple[float, float, float, float]] = []
    marks: dict[str, list[tuple[str, float]]] = {side: [] for side in SIDES}
    for round_number in range(plan.rounds):
        order = entries[:]
        bench.rng.shuffle(order)
        for side, door in order:
            content = turn_text(f"round {round_number}", plan.latency)
            if side in marks:
                marks[side].append((door, bench.services[side].cpu()))
            result = await sample(bench, side, door, conversation(side), content)
            if side == "floor":
                floor.append(result)
            elif result is not None:
                timings[(side, door)].append(result)
    await asyncio.sleep(SETTLE_SECONDS)
    cpu = {side: cpu_per_label(marks[side], bench.services[side].cpu()) for side in SIDES}

    model_json = [t.wall for t in timings[("model", "chat")]]
    model_first = [t.first for t in timings[("model", "chat_stream")] if t.first is not None]
    model_stream = [t.wall for t in timings[("model", "chat_stream")]]
    bench.figures["model_standin"] = {
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
    bench.figures["doors"] = doors
    bench.figures["storage_floor"] = {
        "read_ms": stats([f[0] for f in floor]),
        "transaction_ms": stats([f[1] for f in floor]),
        "total_ms": stats([f[0] + f[1] for f in floor]),
        "cpu_ms": round(statistics.fmean(f[2] + f[3] for f in floor) * 1000, 2),
        "read_cpu_ms": round(statistics.fmean(f[2] for f in floor) * 1000, 2),
        "transaction_cpu_ms": round(statistics.fmean(f[3] for f in floor) * 1000, 2),
    }
    for door in DOORS:
        app, forwarder = doors[door]["app"], doors[door]["forwarder"]
        bench.say(
            f"  {door:17} overhead app {app['overhead_ms']['median']:7.1f} ms "
            f"(p99 {app['overhead_ms']['p99']:7.1f}),"
            f" forwarder {forwarder['overhead_ms']['median']:6.1f} ms;"
            f" CPU app {app['cpu_ms']:5.1f} ms, forwarder {forwarder['cpu_ms']:5.1f} ms"
        )
    floor_figures = bench.figures["storage_floor"]
    bench.say(
        f"  storage floor     read {floor_figures['read_ms']['median']:.1f} ms + transaction "
        f"{floor_figures['transaction_ms']['median']:.1f} ms, CPU {floor_figures['cpu_ms']:.1f} ms"
    )


async def sample(bench: Bench, side: str, door: str, conversation: Conversation, content: str) -> Any:
    assert bench.direct is not None and bench.storage is not None
    if side == "model":
        return await bench.direct.call(content, stream=door == "chat_stream")
    if side == "floor":
        return await bench.storage.floor(conversation, content)
    return await bench.turn("rounds", side, door, conversation, content)
