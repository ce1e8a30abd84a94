"""The wiring of infra/ that the Bicep CLI would otherwise check, and what azd reads: module paths,
parameters and outputs, explicit API versions, the azd parameters file, azure.yaml, and the outputs
and tags azd needs."""

from __future__ import annotations

import json
import re

from tests.support import bicep
from tests.support.infra import (
    INFRA,
    REPO,
    expr_text,
    module_arg,
    module_file,
    resource,
)

AZD_OUTPUTS = (
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_CHAT_DEPLOYMENT",
    "CHAT_STORAGE_ENDPOINT",
    "AZURE_FUNCTION_APP_NAME",
    "SERVICE_API_ENDPOINTS",
    "AZURE_CLIENT_ID",
)


# Wiring the Bicep CLI would check


def test_every_module_exists_and_gets_its_parameters(files):
    for file in files.values():
        for decl in file.modules.values():
            assert not decl.type.startswith(("br:", "br/", "ts:", "ts/")), (
                f"{file.path.name}: {decl.name} uses a registry module; declare resources in local modules"
            )
            target = module_file(files, file, decl)
            args = decl.body.get("params")
            passed = set(args.props) if isinstance(args, bicep.Obj) else set()
            declared = set(target.params)
            required = {name for name, p in target.params.items() if p.value is None}
            assert passed <= declared, f"{decl.name} passes unknown parameters {sorted(passed - declared)}"
            assert required <= passed, f"{decl.name} leaves out required parameters {sorted(required - passed)}"

        source = file.path.read_text(encoding="utf-8")
        for symbol, output in re.findall(r"\b(\w+)\.outputs\.(\w+)", source):
            assert symbol in file.modules, f"{file.path.name}: {symbol}.outputs.{output} names no module"
            target = module_file(files, file, file.modules[symbol])
            assert output in target.outputs, f"{file.path.name}: {target.path.name} has no output {output}"


def test_every_resource_has_an_explicit_api_version(files):
    for file in files.values():
        for r in file.resources:
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", r.api_version), (
                f"{file.path.name}: resource {r.name} ({r.type}) has no explicit API version"
            )


def test_parameters_file_matches_main_bicep(main):
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    unknown = set(parameters) - set(main.params)
    assert not unknown, f"main.parameters.json sets parameters main.bicep does not declare: {sorted(unknown)}"
    required = {name for name, p in main.params.items() if p.value is None}
    assert required <= set(parameters), f"main.parameters.json leaves out {sorted(required - set(parameters))}"
    assert parameters["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert parameters["location"]["value"] == "${AZURE_LOCATION}"
    assert parameters["principalId"]["value"] == "${AZURE_PRINCIPAL_ID}"
    assert main.target_scope == "subscription", "azd provisions main.bicep at subscription scope"


def _read_simple_yaml(text: str) -> dict:
    """Nested `key: value` mappings: all azure.yaml needs. Anything else is refused."""
    root: dict = {}
    stack: list[tuple[int, dict]] = [(-1, root)]
    for number, line in enumerate(text.splitlines(), 1):
        content = re.sub(r"(^|\s)#.*$", "", line).rstrip()
        if not content.strip():
            continue
        indent = len(content) - len(content.lstrip(" "))
        m = re.fullmatch(r"([A-Za-z0-9_.-]+):(?:\s+(.*))?", content.strip())
        assert m, f"azure.yaml:{number}: only `key: value` mappings are read here: {line!r}"
        while indent <= stack[-1][0]:
            stack.pop()
        parent = stack[-1][1]
        if m[2] is None:
            parent[m[1]] = {}
            stack.append((indent, parent[m[1]]))
        else:
            parent[m[1]] = m[2].strip().strip("'\"")
    return root


def test_azure_yaml_declares_the_python_function_service():
    config = _read_simple_yaml((REPO / "azure.yaml").read_text(encoding="utf-8"))
    api = config.get("services", {}).get("api")
    assert isinstance(api, dict), "azure.yaml declares no `api` service"
    assert api.get("host") == "function"
    assert api.get("language") in ("python", "py")
    assert api.get("project") in (".", "./")
    infra = config.get("infra", {})
    assert infra.get("provider", "bicep") == "bicep" and infra.get("path", "infra") == "infra"


def test_outputs_and_tags_for_azd(files, main):
    missing = [name for name in AZD_OUTPUTS if name not in main.outputs]
    assert not missing, f"main.bicep outputs missing: {missing}"
    tags = main.variables["tags"].value
    assert isinstance(tags, bicep.Obj) and expr_text(tags.props.get("azd-env-name")) == "environmentName"
    rg = resource(main, "Microsoft.Resources/resourceGroups")
    assert expr_text(rg.body.get("tags")) == "tags"
    for decl in main.modules.values():
        target = module_file(files, main, decl)
        if "tags" in target.params:
            assert expr_text(module_arg(decl, "tags")) == "tags", f"module {decl.name} is not given the azd tags"
        for r in target.resources:
            child = "parent" in r.body.props
            if not (r.existing or child or r.resource_type.startswith("Microsoft.Authorization/")):
                assert "tags" in r.body.props, f"{target.path.name}: {r.name} carries no tags"
