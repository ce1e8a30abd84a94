"""The goals, each a ratio from one run's figures, judged PASS or MISS."""

from __future__ import annotations

from typing import Any

from benchmarks.bench.plan import DOORS, EXTENSION_IMPORT, SIDES, WORKERS, Plan


def goals(figures: dict[str, Any], plan: Plan) -> list[dict[str, Any]]:
    """Each goal of issue 11 as a ratio of this run's figures, with its limit and whether it holds."""
    doors, floor = figures["doors"], figures["storage_floor"]
    judged: list[dict[str, Any]] = []

    def goal(name: str, ratio: float, limit: float, detail: str) -> None:
        verdict = {"goal": name, "ratio": round(ratio, 3), "limit": limit, "pass": ratio <= limit}
        judged.append({**verdict, "detail": detail})

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
            found["requests"] / 2,
            1.0,
            f"{found['requests']:g} requests in all (at most 2, the read and one transaction; "
            "median of the turns counted)",
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
    concurrency = figures["concurrency"]
    row = concurrency["levels"][level]
    # The app as it serves these best on this machine: one process, or one a core.
    best = min(("app", WORKERS), key=lambda side: row[side]["ratio"])
    shape = "one process" if best == "app" else f"{concurrency['workers']} worker processes"
    goal(
        f"{level} simultaneous turns",
        row[best]["ratio"] - row["forwarder"]["ratio"],
        0.15,
        f"app, {shape}, {row[best]['ratio']:.2f} x ideal (one process {row['app']['ratio']:.2f} x, "
        f"{concurrency['workers']} workers {row[WORKERS]['ratio']:.2f} x) against the forwarder's "
        f"{row['forwarder']['ratio']:.2f} x (the ratio is the difference, at most 0.15)",
    )
    for door in ("chat_stream", "responses_stream"):
        app, forwarder = (doors[door][side]["overhead_ms"]["median"] for side in SIDES)
        allowed = forwarder + floor["read_ms"]["median"]
        goal(
            f"first streamed delta, {door}",
            app / allowed,
            1.0,
            f"app {app:.1f} ms / (forwarder {forwarder:.1f} + one history read {floor['read_ms']['median']:.1f} ms)",
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
    return judged


def print_goals(goals: list[dict[str, Any]]) -> None:
    print("\ngoals", flush=True)
    for found in goals:
        verdict = "PASS" if found["pass"] else "MISS"
        print(f"  {verdict}  {found['goal']}: {found['ratio']:.3f} (limit {found['limit']:g}); {found['detail']}")
