"""The benchmark's pictures, drawn with matplotlib from the figures of a run.

bench-length.png       a turn's cost against conversation length, the window full in each
bench-concurrency.png  wall time of simultaneous turns against the ideal (the model's latency)
bench-cpu.png          CPU per turn of the serving process, split by the profile's sides
bench-overhead.png     per-turn overhead on each door, the app beside the forwarder
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

from benchmarks.bench.plan import WORKERS
from benchmarks.bench.profile_split import CATEGORIES

APP, FORWARDER, FLOOR = "#1f6feb", "#8b949e", "#d29922"
SIDE_COLOURS = {"storage SDK": "#d29922", "openai SDK": "#8957e5", "our code": "#1f6feb", "framework": "#8b949e"}
DOOR_NAMES = {
    "chat": "/api/chat",
    "chat_stream": "/api/chat/stream\n(first delta)",
    "responses": "/api/v1/responses",
    "responses_stream": "/api/v1/responses\nstream (first delta)",
}


def draw(figures: dict, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = [_length(figures, directory / "bench-length.png")]
    written.append(_concurrency(figures, directory / "bench-concurrency.png"))
    written.append(_overhead(figures, directory / "bench-overhead.png"))
    if figures.get("profile"):
        written.append(_cpu(figures, directory / "bench-cpu.png"))
    return written


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _length(figures: dict, path: Path) -> Path:
    length = figures["length"]
    sizes = [int(size) for size in length["sizes"]]
    rows = [length["sizes"][str(size)] for size in sizes]
    figure, wall = plt.subplots(figsize=(7, 4.8))
    medians = [row["cost_ms"]["median"] for row in rows]
    p99s = [row["cost_ms"]["p99"] for row in rows]
    wall.plot(sizes, medians, "o-", color=APP, label="turn cost, median (wall time less the model's)")
    wall.plot(sizes, p99s, "o--", color=APP, alpha=0.5, label="turn cost, p99")
    wall.plot(sizes, [row["cpu_ms"] for row in rows], "s-", color=FORWARDER, label="CPU per turn (serving process)")
    reads = [row["storage_read_ms"]["median"] for row in rows]
    wall.plot(sizes, reads, "^-", color=FLOOR, label="the same history read alone, SDK on Azurite, median")
    wall.set_xscale("log")
    wall.set_xticks(sizes, [f"{size:,}" for size in sizes])
    wall.set_ylim(bottom=0)
    wall.set_xlabel("messages in the conversation")
    wall.set_ylabel("ms")
    window = rows[0]["window_messages"]
    wall.set_title(f"A turn against conversation length (window: {window} messages in each)")
    wall.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    wall.grid(alpha=0.3)
    return _save(figure, path)


def _concurrency(figures: dict, path: Path) -> Path:
    concurrency = figures["concurrency"]
    levels = [int(level) for level in concurrency["levels"]]
    rows = [concurrency["levels"][str(level)] for level in levels]
    figure, axes = plt.subplots(figsize=(7, 4))
    axes.plot(levels, [row["app"]["wall_s"] for row in rows], "o-", color=APP, label="app, one process")
    axes.plot(
        levels,
        [row[WORKERS]["wall_s"] for row in rows],
        "s--",
        color=APP,
        label=f"app, {concurrency['workers']} worker processes",
    )
    axes.plot(levels, [row["forwarder"]["wall_s"] for row in rows], "o-", color=FORWARDER, label="stateless forwarder")
    ideal = concurrency["model_latency_s"]
    axes.axhline(ideal, color="black", linestyle=":", label=f"ideal: the model's {ideal:g} s")
    axes.set_xscale("log", base=2)
    axes.set_xticks(levels, [str(level) for level in levels])
    axes.set_ylim(bottom=0)
    axes.set_xlabel("simultaneous turns")
    axes.set_ylabel("wall time until the last answer, s")
    axes.set_title("Simultaneous turns, each on its own conversation")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    return _save(figure, path)


def _overhead(figures: dict, path: Path) -> Path:
    doors = list(figures["doors"])
    figure, axes = plt.subplots(figsize=(8, 4))
    width = 0.38
    positions = range(len(doors))
    app = [figures["doors"][door]["app"]["overhead_ms"]["median"] for door in doors]
    forwarder = [figures["doors"][door]["forwarder"]["overhead_ms"]["median"] for door in doors]
    axes.bar([p - width / 2 for p in positions], app, width, color=APP, label="app")
    axes.bar([p + width / 2 for p in positions], forwarder, width, color=FORWARDER, label="stateless forwarder")
    floor = figures["storage_floor"]
    axes.axhline(floor["total_ms"]["median"], color=FLOOR, linestyle="--", label="storage floor: read + transaction")
    axes.axhline(floor["read_ms"]["median"], color=FLOOR, linestyle=":", label="storage floor: read")
    axes.set_xticks(list(positions), [DOOR_NAMES.get(door, door) for door in doors], fontsize=8)
    axes.set_ylabel("ms over the model stand-in's own latency (median)")
    axes.set_title("Per-turn overhead")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3, axis="y")
    return _save(figure, path)


def _cpu(figures: dict, path: Path) -> Path:
    profile = figures["profile"]
    bars = [("app\n/api/chat", profile["app"]), ("forwarder\n/api/chat", profile["forwarder"])]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for position, (_, side) in enumerate(bars):
        bottom = 0.0
        for category in CATEGORIES:
            value = side["cpu_ms"] * side["fractions"][category]
            label = category if position == 0 else None
            axes.bar(position, value, 0.6, bottom=bottom, color=SIDE_COLOURS[category], label=label)
            bottom += value
        axes.text(position, bottom, f"{side['cpu_ms']:.1f} ms", ha="center", va="bottom", fontsize=9)
    floor = figures["storage_floor"]["cpu_ms"]
    axes.bar(len(bars), floor, 0.6, color=SIDE_COLOURS["storage SDK"], hatch="//", edgecolor="white")
    axes.text(len(bars), floor, f"{floor:.1f} ms", ha="center", va="bottom", fontsize=9)
    axes.set_xticks(range(len(bars) + 1), [name for name, _ in bars] + ["storage floor\n(SDK read + transaction)"])
    axes.set_ylabel("CPU per turn, ms")
    axes.set_title("Where a turn's CPU goes (py-spy samples of the serving process)")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3, axis="y")
    return _save(figure, path)
