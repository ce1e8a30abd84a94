"""The benchmark's smoke run (`scripts/bench --smoke`) completes and writes every figure.

It checks that the bench works end to end, against the real components, and never whether the
app is fast: the figures are only checked to be there, and the goals to be judged.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from benchmarks.bench import report
from tests.support import ROOT

pytestmark = pytest.mark.e2e

DOORS = ("chat", "chat_stream", "responses", "responses_stream")
SIDES = ("app", "forwarder")
WORKERS = "workers"
GOALS = (
    "CPU per turn, ",
    "overhead, ",
    "storage round trips on the critical path, ",
    "storage requests per continuing turn, ",
    "flat: ",
    " simultaneous turns",
    "first streamed delta, ",
    "cold import",
)


def is_figure(value) -> bool:
    """A number that was measured (an overhead or a difference may be below zero on a noisy machine)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_summary(value) -> bool:
    return isinstance(value, dict) and value["n"] > 0 and is_figure(value["median"]) and is_figure(value["p99"])


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    output = tmp_path_factory.mktemp("bench") / "smoke.json"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench", "--smoke", "--json", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    return json.loads(output.read_text()), run.stdout


def test_every_door_has_its_overhead_and_cpu_beside_the_forwarders(smoke):
    figures, _ = smoke
    assert is_summary(figures["model_standin"]["json_ms"])
    assert is_summary(figures["model_standin"]["stream_first_delta_ms"])
    for door in DOORS:
        for side in SIDES:
            found = figures["doors"][door][side]
            assert is_summary(found["overhead_ms"]) and is_figure(found["cpu_ms"])
            if door.endswith("_stream"):
                assert is_summary(found["first_delta_ms"]) and is_summary(found["end_overhead_ms"])
            else:
                assert is_summary(found["wall_ms"])
    floor = figures["storage_floor"]
    assert all(is_summary(floor[name]) for name in ("read_ms", "transaction_ms", "total_ms"))
    assert is_figure(floor["cpu_ms"])


def test_the_storage_requests_of_a_turn_are_counted_with_their_timeline(smoke):
    figures, _ = smoke
    for door in DOORS:
        found = figures["storage_requests"][door]
        assert found["requests"] >= 2 and found["critical_path"] >= 1
        assert 0 <= found["list_update_outlasts_transaction"] <= 1
        names = [step["request"] for step in found["example"]]
        # The turn's own history read and transaction are among what the proxy saw.
        assert "query messages" in names
        assert any(name.startswith("batch messages (") for name in names)
        assert names[-1] == "answer received"


def test_length_concurrency_cold_start_and_memory_are_measured(smoke):
    figures, _ = smoke
    sizes = figures["length"]["sizes"]
    assert sorted(map(int, sizes)) == sorted(figures["plan"]["sizes"])
    for row in sizes.values():
        assert row["window_messages"] > 0 and is_summary(row["cost_ms"]) and is_figure(row["cpu_ms"])
        assert is_summary(row["storage_read_ms"])
    levels = figures["concurrency"]["levels"]
    assert sorted(map(int, levels)) == sorted(figures["plan"]["levels"])
    # The app as one process and under worker processes, beside the forwarder.
    assert figures["concurrency"]["workers"] >= 2
    for row in levels.values():
        for side in (*SIDES, WORKERS):
            assert is_figure(row[side]["wall_s"]) and is_figure(row[side]["ratio"]) and is_summary(row[side]["turn_ms"])
            assert is_figure(row[side]["cpu_ms"])  # of every worker process, for WORKERS
    cold = figures["cold_import"]
    for name in ("function_app_ms", "sdks_ms", "sdks_and_extension_ms", "interpreter_ms"):
        assert is_summary(cold[name])
    assert cold["modules"]["function_app"] > 0 and isinstance(cold["unconfigured_imported"], list)
    for side in SIDES:
        assert is_summary(figures["first_request"][side]["first_turn_ms"])
        assert figures["memory"][side]["peak_mib"] > 0
    # Failed turns, and what the servers logged, by phase: reported, never hidden.
    assert isinstance(figures["errors"], dict) and isinstance(figures["logged"], dict)
    machine = figures["machine"]
    assert machine["cores"] > 0 and machine["python"] and machine["azurite"]


def test_every_goal_is_judged_and_printed(smoke):
    figures, stdout = smoke
    goals = figures["goals"]
    for family in GOALS:
        assert any(family in goal["goal"] for goal in goals), family
    for goal in goals:
        assert isinstance(goal["pass"], bool) and is_figure(goal["ratio"])
        verdict = "PASS" if goal["pass"] else "MISS"
        assert f"{verdict}  {goal['goal']}: " in stdout


def test_the_report_fills_a_page_with_the_runs_tables(smoke):
    figures, _ = smoke
    page = "Intro.\n\n<!-- bench:goals -->\nold table\n<!-- /bench:goals -->\n\nThe rest.\n"
    filled = report.fill(page, figures)
    assert "old table" not in filled
    assert filled.startswith("Intro.\n\n<!-- bench:goals -->\n| goal | measured | limit | result |")
    assert filled.endswith("\n<!-- /bench:goals -->\n\nThe rest.\n")
    assert filled.count("| PASS |") + filled.count("| MISS |") == len(figures["goals"])
    # Every section renders; only what went wrong, and the profile (not taken by --smoke), may be empty.
    rendered = {name: section(figures) for name, section in report.SECTIONS.items()}
    assert all(text for name, text in rendered.items() if name not in ("problems", "profile"))
