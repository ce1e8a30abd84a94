"""The layers of chat/: the engine imports nothing but the standard library and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from tests.support import ROOT

ENGINE = ROOT / "chat" / "engine"


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            # A relative import stays inside its package; engine modules use absolute ones.
            names.append("." * node.level + (node.module or ""))
    return names


def test_the_engine_imports_no_sdk_no_web_framework_and_no_other_layer():
    offending = {}
    for path in sorted(ENGINE.glob("*.py")):
        bad = [
            name
            for name in imported_modules(path)
            if not (
                name.split(".")[0] in sys.stdlib_module_names
                or name == "chat.engine"
                or name.startswith("chat.engine.")
            )
        ]
        if bad:
            offending[path.name] = bad
    assert offending == {}


def test_the_rule_sees_what_it_forbids(tmp_path):
    module = tmp_path / "sample.py"
    module.write_text("import openai\nfrom azure.data.tables import TableClient\nfrom chat.storage import keys\n")
    assert imported_modules(module) == ["openai", "azure.data.tables", "chat.storage"]
