"""The figures of a bench run as Markdown tables, for docs/benchmarks.md.

.venv/bin/python -m benchmarks.bench.report docs/benchmarks.json
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from benchmarks.bench.plan import WORKERS

DOORS = {
    "chat": "`POST /api/chat`",
    "chat_stream": "`POST /api/chat/stream`",
    "responses": "`POST /api/v1/responses`",
    "responses_stream": "`POST /api/v1/responses`, `stream: true`",
}


def _ms(summary: dict) -> str:
    return f"{summary['median']:.1f} / {summary['p99']:.1f}"


def _machine(figures: dict) -> str:
    out: list[str] = []
    add = out.append
    machine, plan = figures["machine"], figures["plan"]
    add(
        f"{machine['cores']} cores ({machine['cpu_model']}), Python {machine['python']}, Azurite "
        f"{machine['azurite']}, {machine['platform']}; load average {machine['load_before'][1]:.1f} before the run "
        f"and {machine['load_after'][1]:.1f} after (5 minutes); the run took {figures['seconds'] / 60:.0f} minutes "
        f"({plan['mode']}: {plan['rounds']} rounds).\n"
    )
    return "\n".join(out).strip()


def _goals(figures: dict) -> str:
    out: list[str] = []
    add = out.append
    add("| goal | measured | limit | result |\n| --- | --- | --- | --- |")
    for goal in figures["goals"]:
        add(
            f"| {goal['goal']} | {goal['ratio']:.2f}: {goal['detail']} | {goal['limit']:g} | "
            f"{'PASS' if goal['pass'] else 'MISS'} |"
        )
    return "\n".join(out).strip()


def _doors(figures: dict) -> str:
    out: list[str] = []
    add = out.append
    model = figures["model_standin"]
    add(
        f"The model stand-in alone (set latency {model['set_latency_ms']:g} ms): JSON {_ms(model['json_ms'])} ms, "
        f"first streamed delta {_ms(model['stream_first_delta_ms'])} ms (median / p99).\n"
    )
    add(
        "| door | app: overhead, median / p99 | forwarder: overhead | app: CPU per turn | forwarder: CPU per turn |\n"
        "| --- | --- | --- | --- | --- |"
    )
    for door, name in DOORS.items():
        app, forwarder = figures["doors"][door]["app"], figures["doors"][door]["forwarder"]
        what = " (first delta)" if door.endswith("_stream") else ""
        add(
            f"| {name}{what} | {_ms(app['overhead_ms'])} ms | {_ms(forwarder['overhead_ms'])} ms | "
            f"{app['cpu_ms']:.1f} ms | {forwarder['cpu_ms']:.1f} ms |"
        )
        if door.endswith("_stream"):
            add(
                f"| {name} (whole stream) | {_ms(app['end_overhead_ms'])} ms | "
                f"{_ms(forwarder['end_overhead_ms'])} ms | | |"
            )
    floor = figures["storage_floor"]
    add(
        f"\nStorage floor (median / p99): history read {_ms(floor['read_ms'])} ms, transaction "
        f"{_ms(floor['transaction_ms'])} ms, both {_ms(floor['total_ms'])} ms; CPU {floor['cpu_ms']:.1f} ms "
        f"({floor['read_cpu_ms']:.1f} ms the read, {floor['transaction_cpu_ms']:.1f} ms the transaction).\n"
    )
    return "\n".join(out).strip()


def _storage_requests(figures: dict) -> str:
    out: list[str] = []
    add = out.append
    add(
        "| door | storage requests | one after another | after the answer | list update ends after the transaction |\n"
        "| --- | --- | --- | --- | --- |"
    )
    for door, name in DOORS.items():
        found = figures["storage_requests"][door]
        add(
            f"| {name} | {found['requests']:g} (at most {found['requests_max']}) | {found['critical_path']:g} "
            f"(at most {found['critical_path_max']}) | {found['after_answer']:g} | "
            f"{found['list_update_outlasts_transaction']:.0%} of turns |"
        )
    add("\nOne `POST /api/chat` turn, as the proxy saw it (ms from the request):\n")
    add("| storage request | start | end |\n| --- | --- | --- |")
    for step in figures["storage_requests"]["chat"]["example"]:
        add(f"| {step['request']} | {step['start_ms']:.1f} | {step.get('end_ms', step['start_ms']):.1f} |")
    return "\n".join(out).strip()


def _length(figures: dict) -> str:
    out: list[str] = []
    add = out.append
    length = figures["length"]
    add(
        "| messages | window sent | turn, median / p99 | turn cost (less the model's "
        f"{length['model_latency_ms']:g} ms) | CPU per turn | the history read alone |\n"
        "| --- | --- | --- | --- | --- | --- |"
    )
    for size, row in length["sizes"].items():
        add(
            f"| {int(size):,} | {row['window_messages']} messages | {_ms(row['wall_ms'])} ms | {_ms(row['cost_ms'])} ms"
            f" | {row['cpu_ms']:.1f} ms | {_ms(row['storage_read_ms'])} ms |"
        )
    return "\n".join(out).strip()


def _concurrency(figures: dict) -> str:
    out: list[str] = []
    add = out.append
    concurrency = figures["concurrency"]
    workers = concurrency["workers"]
    add(
        f"| simultaneous turns (model {concurrency['model_latency_s']:g} s) | app, one process: wall, x ideal | "
        f"app, {workers} worker processes: wall, x ideal | forwarder: wall, x ideal | app, {workers} workers: a turn, "
        "median / p99 | app: CPU per turn, one process / workers |\n| --- | --- | --- | --- | --- | --- |"
    )
    for level, row in concurrency["levels"].items():
        app, scaled, forwarder = row["app"], row[WORKERS], row["forwarder"]
        add(
            f"| {level} | {app['wall_s']:.2f} s, {app['ratio']:.2f} | "
            f"{scaled['wall_s']:.2f} s, {scaled['ratio']:.2f} | "
            f"{forwarder['wall_s']:.2f} s, {forwarder['ratio']:.2f} | {_ms(scaled['turn_ms'])} ms | "
            f"{app['cpu_ms']:.1f} / {scaled['cpu_ms']:.1f} ms |"
        )
    return "\n".join(out).strip()


def _problems(figures: dict) -> str:
    out: list[str] = []
    add = out.append
    logged = figures.get("logged") or {}
    errors = figures.get("errors") or {}
    if logged or errors:
        add("What went wrong, by phase (turns that failed; what the servers logged):\n")
        for phase, found in errors.items():
            for what, count in found.items():
                add(f"- {phase}: {count} x failed turn, {what}")
        for phase, found in logged.items():
            for what, count in found.items():
                add(f"- {phase}: {count} x logged `{what}`")
    else:
        add("Nothing went wrong: no turn failed, and the servers logged no warning, in any phase.")
    return "\n".join(out).strip()


def _cold_start(figures: dict) -> str:
    out: list[str] = []
    add = out.append
    cold = figures["cold_import"]
    add("| fresh interpreter | median / p99 |\n| --- | --- |")
    add(f"| `import function_app` | {_ms(cold['function_app_ms'])} ms |")
    add(f"| the SDKs it needs | {_ms(cold['sdks_ms'])} ms |")
    add(f"| the SDKs and the HTTP streams extension | {_ms(cold['sdks_and_extension_ms'])} ms |")
    add(f"| the interpreter alone (`pass`) | {_ms(cold['interpreter_ms'])} ms |")
    beyond = cold["beyond_the_sdks"]
    packages = ", ".join(f"`{name}` {ms:g} ms" for name, ms in beyond["packages_ms"].items())
    add(
        f"\n`import function_app` loads {cold['modules']['function_app']:,} modules, {beyond['modules']} more than the "
        f"SDKs and the extension ({beyond['self_ms']:g} ms of their own import time: {packages}); telemetry not "
        f"configured and imported: {', '.join(cold['unconfigured_imported']) or 'none'}.\n"
    )
    add("| fresh server | listening after | first turn | second turn |\n| --- | --- | --- | --- |")
    for side, found in figures["first_request"].items():
        add(
            f"| {side} | {found['listening_ms']['median']:.0f} ms | {found['first_turn_ms']['median']:.0f} ms | "
            f"{found['second_turn_ms']['median']:.0f} ms |"
        )
    return "\n".join(out).strip()


def _memory(figures: dict) -> str:
    out: list[str] = []
    add = out.append
    memory = figures["memory"]
    add(
        f"\nPeak memory (VmHWM) after every phase: app {memory['app']['peak_mib']} MiB, forwarder "
        f"{memory['forwarder']['peak_mib']} MiB.\n"
    )
    return "\n".join(out).strip()


def _profile(figures: dict) -> str:
    out: list[str] = []
    add = out.append
    profile = figures.get("profile")
    if profile:
        sampled = ", ".join(
            f"{side} {found['sampled_s']:g} s of {found['profiled_cpu_s']:g} s of CPU"
            for side, found in profile.items()
        )
        add(f"py-spy's samples saw {sampled} (measured in /proc over the profiled turns).\n")
        add("| serving process | CPU per turn | storage SDK | openai SDK | our code | framework |")
        add("| --- | --- | --- | --- | --- | --- |")
        for side, found in profile.items():
            shares = " | ".join(
                f"{found['cpu_ms'] * share:.1f} ms ({share:.0%})" for share in found["fractions"].values()
            )
            add(f"| {side} | {found['cpu_ms']:.1f} ms | {shares} |")
        add("\nThe app's hottest functions, by samples in them alone:\n")
        for name, share in profile["app"]["self"]:
            add(f"- {share:.1%} `{name}`")
        add("\nOur functions, by samples in them and what they call:\n")
        for name, share in profile["app"]["ours_inclusive"]:
            add(f"- {share:.1%} `{name}`")
        add("\nThe storage SDK's functions, by samples in them and what they call (of the storage SDK's):\n")
        for name, share in profile["app"]["storage_inclusive"]:
            add(f"- {share:.1%} `{name}`")
    return "\n".join(out).strip()


SECTIONS = {
    "machine": _machine,
    "goals": _goals,
    "doors": _doors,
    "storage_requests": _storage_requests,
    "length": _length,
    "concurrency": _concurrency,
    "problems": _problems,
    "cold_start": _cold_start,
    "memory": _memory,
    "profile": _profile,
}
_FILLED = re.compile(r"(<!-- bench:(\w+) -->\n)(?:.*?\n)??(<!-- /bench:\2 -->)", re.S)


def tables(figures: dict) -> str:
    return "\n\n".join(section(figures) for section in SECTIONS.values())


def fill(page: str, figures: dict) -> str:
    """`page` with what lies between each `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` replaced
    by that section's tables."""
    return _FILLED.sub(lambda found: f"{found.group(1)}{SECTIONS[found.group(2)](figures)}\n{found.group(3)}", page)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("figures", type=Path)
    parser.add_argument("--fill", type=Path, help="a page whose bench:NAME sections to fill in, in place")
    args = parser.parse_args()
    figures = json.loads(args.figures.read_text())
    if args.fill is None:
        print(tables(figures))
        return
    args.fill.write_text(fill(args.fill.read_text(), figures))


if __name__ == "__main__":
    main()
