"""Figures from samples: medians and p99s, CPU charged to each turn, and the machine they were taken on."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.bench.processes import ROOT


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
