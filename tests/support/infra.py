"""infra/ read with the Bicep reader, for the tests of the deployment: its files parsed, and the
lookups those tests make in them (a module's file, the one resource of a type, a module's arguments,
the module output an expression reads and the resource behind it, the function app's settings)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import ROOT, bicep

REPO = ROOT
INFRA = REPO / "infra"
MAIN = INFRA / "main.bicep"


def infra_files() -> dict[Path, object]:
    """Every Bicep file under infra/, parsed, by path."""
    parsed = {path: bicep.parse_file(path) for path in sorted(INFRA.rglob("*.bicep"))}
    assert MAIN in parsed, f"{MAIN.relative_to(REPO)} is missing"
    return parsed


def module_file(files, owner, module_decl):
    path = (owner.path.parent / module_decl.type).resolve()
    assert path in files, f"{owner.path.name}: module {module_decl.name} points at missing {module_decl.type}"
    return files[path]


def resource(file, resource_type: str):
    found = [r for r in file.resources if r.resource_type == resource_type and not r.existing]
    assert len(found) == 1, f"{file.path.name}: expected one {resource_type}, found {len(found)}"
    return found[0]


def resources_of_type(files, resource_type: str):
    return [(f, r) for f in files.values() for r in f.resources if r.resource_type == resource_type and not r.existing]


def the_module_with(files, main, resource_type: str):
    """The module called from main.bicep that declares `resource_type`, and its file."""
    hits = []
    for decl in main.modules.values():
        target = module_file(files, main, decl)
        if any(r.resource_type == resource_type and not r.existing for r in target.resources):
            hits.append((decl, target))
    assert len(hits) == 1, f"expected one module of main.bicep to declare {resource_type}, found {len(hits)}"
    return hits[0]


def module_arg(module_decl, name: str):
    params = module_decl.body.get("params")
    assert isinstance(params, bicep.Obj), f"module {module_decl.name} has no params object"
    return params.props.get(name)


def expr_text(value) -> str:
    assert isinstance(value, bicep.Expr), f"expected an expression, got {value!r}"
    return value.text


def traced_output(files, main, text: str) -> tuple[object, str]:
    """`sym.outputs.name` in main.bicep -> (module file, source text of that output's value)."""
    m = re.fullmatch(r"(\w+)\.outputs\.(\w+)", text)
    assert m, f"{text!r} is not a module output reference"
    assert m[1] in main.modules, f"{text!r}: no module {m[1]} in main.bicep"
    target = module_file(files, main, main.modules[m[1]])
    assert m[2] in target.outputs, f"{text!r}: {target.path.name} has no output {m[2]}"
    return target, expr_text(target.outputs[m[2]].value)


def resource_behind(file, text: str):
    """The resource a `symbol.property...` expression reads, in `file`."""
    symbol = text.split(".", 1)[0]
    matches = [r for r in file.resources if r.name == symbol]
    assert matches, f"{file.path.name}: {text!r} reads no resource"
    return matches[0]


def app_settings(site) -> dict[str, object]:
    settings = site.body.get("properties.siteConfig.appSettings")
    assert isinstance(settings, bicep.Arr), "the function app has no siteConfig.appSettings list"
    by_name: dict[str, object] = {}
    for item in settings.items:
        assert isinstance(item, bicep.Obj), f"app setting {item!r} is not an object"
        name = bicep.literal(item.props.get("name"))
        assert isinstance(name, str), f"app setting name {item.props.get('name')!r} is not a literal"
        assert name not in by_name, f"app setting {name} is set twice"
        by_name[name] = item.props.get("value")
    return by_name
