"""What serves only local runs and tests stays out of the deployed app: the stand-ins, the tests'
helpers and the benchmarks are left out of the package, and the app never imports them."""

from __future__ import annotations

import ast

from tests.support import ROOT

LOCAL_ONLY = ("standins", "tests", "benchmarks")


def test_the_package_leaves_out_the_stand_ins_the_tests_and_the_benchmarks():
    ignored = {line.strip() for line in (ROOT / ".funcignore").read_text().splitlines()}
    assert {f"{name}/" for name in LOCAL_ONLY} <= ignored


def test_the_app_imports_nothing_that_is_not_deployed():
    offending = {}
    for path in [ROOT / "function_app.py", *sorted((ROOT / "chat").rglob("*.py"))]:
        tree = ast.parse(path.read_text(), filename=str(path))
        names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        names += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and not node.level]
        bad = [name for name in names if name.split(".")[0] in LOCAL_ONLY]
        if bad:
            offending[str(path.relative_to(ROOT))] = bad
    assert offending == {}
