"""The phases that time processes: cold imports, a worker's first requests, memory, the CPU profile."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.bench import profile_split
from benchmarks.bench.client import TurnFailed, client_session, timed_turn, turn_text
from benchmarks.bench.figures import stats
from benchmarks.bench.plan import IMPORTS, SETTLE_SECONDS, SIDES, UNCONFIGURED
from benchmarks.bench.processes import PROFILE_RATE, ROOT, Service, base_env, start_py_spy

if TYPE_CHECKING:
    from benchmarks.bench.phases import Bench


def imports(bench: Bench) -> None:
    plan = bench.plan
    env = base_env()
    for code in IMPORTS.values():  # compile what has no bytecode yet, outside the clock
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True)
    times: dict[str, list[float]] = {name: [] for name in IMPORTS}
    names = list(IMPORTS)
    for run in range(plan.imports):
        for name in names[run % len(names) :] + names[: run % len(names)]:
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", IMPORTS[name]], cwd=ROOT, env=env, check=True, capture_output=True)
            times[name].append(time.perf_counter() - started)
    modules = {name: _imported(IMPORTS[name], env) for name in ("function_app", "sdks_and_extension")}
    extra = {m: t for m, t in modules["function_app"].items() if m not in modules["sdks_and_extension"]}
    by_package: dict[str, int] = {}
    for module, self_us in extra.items():
        package = ".".join(module.split(".")[: 2 if module.startswith(("azure.", "azurefunctions.")) else 1])
        by_package[package] = by_package.get(package, 0) + self_us
    bench.figures["cold_import"] = {
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
    cold = bench.figures["cold_import"]
    bench.say(
        f"cold import: function_app {cold['function_app_ms']['median']:.0f} ms, the SDKs "
        f"{cold['sdks_ms']['median']:.0f} ms ({cold['sdks_and_extension_ms']['median']:.0f} ms with the streams "
        f"extension), the interpreter alone {cold['interpreter_ms']['median']:.0f} ms"
    )


async def first_requests(bench: Bench) -> None:
    plan = bench.plan
    assert bench.azurite is not None
    pool = await bench.pool("first", 2)
    results: dict[str, dict[str, list[float]]] = {side: {"listen": [], "first": [], "second": []} for side in SIDES}
    modules = {"app": "chat.local:app", "forwarder": "benchmarks.bench.forwarder:app"}
    for trial in range(plan.starts):
        for side in SIDES if trial % 2 == 0 else SIDES[::-1]:
            service = Service(f"a fresh {side}", modules[side], bench.env(bench.azurite.connection_string))
            started = time.perf_counter()
            service.start().wait()
            listening = time.perf_counter() - started
            try:
                async with client_session() as session:
                    first = await timed_turn(session, service.url, "chat", pool[0].id, turn_text("first", plan.latency))
                    second = await timed_turn(
                        session, service.url, "chat", pool[1].id, turn_text("second", plan.latency)
                    )
            except TurnFailed as e:
                bench.failed("first request", f"{side} chat: {e.label}")
                continue
            finally:
                service.stop()
                service.remove_log()
            results[side]["listen"].append(listening)
            results[side]["first"].append(first.wall)
            results[side]["second"].append(second.wall)
    bench.figures["first_request"] = {
        side: {
            "listening_ms": stats(found["listen"]),
            "first_turn_ms": stats(found["first"]),
            "second_turn_ms": stats(found["second"]),
        }
        for side, found in results.items()
    }
    for side in SIDES:
        found = bench.figures["first_request"][side]
        bench.say(
            f"first request, {side}: listening after {found['listening_ms']['median']:.0f} ms, first turn "
            f"{found['first_turn_ms']['median']:.0f} ms, second {found['second_turn_ms']['median']:.0f} ms"
        )


def memory(bench: Bench) -> None:
    bench.figures["memory"] = {side: bench.services[side].memory() for side in SIDES}
    bench.say(
        f"peak memory: app {bench.figures['memory']['app']['peak_mib']} MiB, "
        f"forwarder {bench.figures['memory']['forwarder']['peak_mib']} MiB"
    )


async def profile(bench: Bench) -> None:
    plan = bench.plan
    binary = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if not plan.profile_turns or binary is None:
        bench.figures["profile"] = None
        return
    pool = await bench.pool("profiled", 20)
    await bench.warm("app", pool)
    await bench.warm("forwarder", pool)
    bench.say(f"profile: py-spy on each serving process over {plan.profile_turns} turns of /api/chat")
    profiles = {}
    with tempfile.TemporaryDirectory() as directory:
        for side in SIDES:
            service = bench.services[side]
            output = Path(directory) / f"{side}.txt"
            spy = start_py_spy(binary, service.pid, output)
            await asyncio.sleep(2)  # py-spy attaches
            before = service.cpu()
            for number in range(plan.profile_turns):
                content = turn_text("profiled", plan.latency)
                await bench.turn("profile", side, "chat", pool[number % len(pool)], content)
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
            found["cpu_ms"] = bench.figures["doors"]["chat"][side]["cpu_ms"]
            profiles[side] = found
            shares = ", ".join(f"{k} {v:.0%}" for k, v in found["fractions"].items())
            bench.say(f"  {side}: {found['samples']} samples: {shares}")
    bench.figures["profile"] = profiles


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
