"""checkov's Bicep policies over infra/, run from checkov's own virtual environment (CHECKOV_BIN, by
default .venv-infra/bin/checkov): no failed check, and a skip only as a `//checkov:skip=CKV_...:reason`
comment on the resource in the Bicep file."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.infra import (
    INFRA,
    REPO,
)


def checkov_bin() -> Path:
    default = REPO / ".venv-infra" / "bin" / "checkov"
    path = Path(os.environ.get("CHECKOV_BIN") or default)
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"checkov not found at {path}. Create its own environment from the repository root with "
            "`python3 -m venv .venv-infra && .venv-infra/bin/pip install -r requirements-infra.txt`, "
            "or point CHECKOV_BIN at a checkov executable.",
            pytrace=False,
        )
    return path


def test_checkov_bicep_checks_pass():
    checkov = checkov_bin()
    for folder in (REPO, INFRA):
        for name in (".checkov.yaml", ".checkov.yml"):
            assert not (folder / name).exists(), f"{name} could skip checks outside the Bicep: skip on the resource"
    # Skips must live in the Bicep files, not in the environment (CKV_SKIP_CHECK and the like).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CKV_", "BC_", "CHECKOV_", "PRISMA_"))}
    proc = subprocess.run(
        [
            str(checkov),
            "--directory",
            str(INFRA),
            "--framework",
            "bicep",
            "--output",
            "json",
            "--compact",
            "--skip-download",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov printed no JSON report (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    reports = report if isinstance(report, list) else [report]
    summary = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0}
    results = {"passed_checks": [], "failed_checks": [], "skipped_checks": [], "parsing_errors": []}
    for item in reports:
        assert item.get("check_type", "bicep") == "bicep"
        for key in summary:
            summary[key] += item["summary"][key]
        for key in results:
            results[key] += item.get("results", {}).get(key, [])

    assert not results["parsing_errors"] and summary["parsing_errors"] == 0, (
        f"checkov could not parse {results['parsing_errors']}: those files were not checked"
    )
    failures = [
        f"{r['check_id']} {r['resource']} ({r['file_path']}): {r['check_name']}" for r in results["failed_checks"]
    ]
    assert summary["failed"] == 0 and not failures, "checkov failed checks:\n" + "\n".join(failures)
    assert summary["passed"] > 0, "checkov ran no check at all"

    checked = {Path(r["file_path"]).name for r in results["passed_checks"] + results["skipped_checks"]}
    for module in ("function-app.bicep", "storage.bicep", "openai.bicep"):
        assert module in checked, f"checkov checked nothing in {module}"
    passed = {(r["check_id"], r["resource"]) for r in results["passed_checks"]}
    assert ("CKV_AZURE_56", "Microsoft.Web/sites/config.appServiceAuthentication") in passed, (
        "checkov must see App Service authentication turned on for the function app"
    )

    for r in results["skipped_checks"]:
        reason = (r.get("check_result") or {}).get("suppress_comment", "")
        assert len(reason.strip()) >= 20, f"skip of {r['check_id']} on {r['resource']} gives no real reason"
        source = (INFRA / r["file_path"].lstrip("/")).read_text(encoding="utf-8")
        assert f"checkov:skip={r['check_id']}:" in source, f"skip of {r['check_id']} is not in {r['file_path']}"
