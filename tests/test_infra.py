"""Offline checks of the deployment infrastructure: azure.yaml and infra/ (Bicep for `azd up`).

Two kinds of check:
- checkov's Bicep policies, run from its own virtual environment (CHECKOV_BIN, by default
  .venv-infra/bin/checkov), must report no failed check; a skip is allowed only as a
  `//checkov:skip=CKV_...:reason` comment on the resource in the Bicep file;
- the product's own rules, read from the Bicep with tests/support/bicep.py: keyless everywhere, one
  user-assigned identity holding exactly the roles it needs, the app settings the app reads,
  Flex Consumption shapes, and wiring that the Bicep CLI would otherwise check (module paths,
  module parameters and outputs, the azd parameters file).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support import bicep

REPO = Path(__file__).resolve().parent.parent
INFRA = REPO / "infra"
MAIN = INFRA / "main.bicep"
ROLE_MODULE = INFRA / "modules" / "role-assignment.bicep"
TABLE_ROLE_MODULE = INFRA / "modules" / "table-role-assignment.bicep"

# Built-in role definition GUIDs, the same in every tenant.
OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"
TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
ROLE_NAMES = {
    OPENAI_USER: "Cognitive Services OpenAI User",
    TABLE_DATA_CONTRIBUTOR: "Storage Table Data Contributor",
    BLOB_DATA_OWNER: "Storage Blob Data Owner",
    METRICS_PUBLISHER: "Monitoring Metrics Publisher",
    QUEUE_DATA_CONTRIBUTOR: "Storage Queue Data Contributor",
}
BROAD_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": "Role Based Access Control Administrator",
    "17d1049b-9a84-46fb-8f53-869881c3d3ab": "Storage Account Contributor",
    "25fbc0a9-bd7c-42a3-aa1a-3b75d497ee68": "Cognitive Services Contributor",
    "a001fd3d-188f-4b5d-821b-7da978bf7442": "Cognitive Services OpenAI Contributor",
}
# What the app's identity holds, and on which kind of resource: a targetKind of the role module, or
# "tables", the table role module's grant on each of the app's tables and nothing more.
APP_ROLES = {
    OPENAI_USER: "openAiAccount",
    TABLE_DATA_CONTRIBUTOR: "tables",
    BLOB_DATA_OWNER: "storageAccount",
    METRICS_PUBLISHER: "applicationInsights",
}
# What the deploying user may get, when asked for, to run the app locally against the deployed resources.
USER_ROLES = {OPENAI_USER: "openAiAccount", TABLE_DATA_CONTRIBUTOR: "tables"}
TARGET_TYPES = {
    "storageAccount": "Microsoft.Storage/storageAccounts",
    "openAiAccount": "Microsoft.CognitiveServices/accounts",
    "applicationInsights": "Microsoft.Insights/components",
}
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

REQUIRED_APP_SETTINGS = (
    "PYTHON_ENABLE_INIT_INDEXING",
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_CHAT_DEPLOYMENT",
    "AZURE_OPENAI_API_VERSION",
    "CHAT_STORAGE_ENDPOINT",
    "AZURE_CLIENT_ID",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "CHAT_TRUST_CLIENT_PRINCIPAL",
    "CHAT_SYSTEM_PROMPT",
    "CHAT_AUTH_LEVEL",
)
# Set through functionAppConfig on Flex Consumption, or key-based: never app settings here.
FORBIDDEN_APP_SETTINGS = (
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "AzureWebJobsStorage",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "AZURE_OPENAI_API_KEY",
    "CHAT_STORAGE_CONNECTION_STRING",
    # App Service sets it when its authentication is on; an app setting would fake the app's check.
    "WEBSITE_AUTH_ENABLED",
)
AZD_OUTPUTS = (
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_CHAT_DEPLOYMENT",
    "CHAT_STORAGE_ENDPOINT",
    "AZURE_FUNCTION_APP_NAME",
    "SERVICE_API_ENDPOINTS",
    "AZURE_CLIENT_ID",
)


# ---------------------------------------------------------------------------------------------
# Reading the infrastructure


@pytest.fixture(scope="module")
def files() -> dict[Path, object]:
    parsed = {path: bicep.parse_file(path) for path in sorted(INFRA.rglob("*.bicep"))}
    assert MAIN in parsed, f"{MAIN.relative_to(REPO)} is missing"
    return parsed


@pytest.fixture(scope="module")
def main(files):
    return files[MAIN]


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


def role_grants(files, main):
    """Every call of the two role modules in main.bicep, read into a dict each."""
    grants = []
    for decl in main.modules.values():
        path = module_file(files, main, decl).path
        if path not in (ROLE_MODULE, TABLE_ROLE_MODULE):
            continue
        role_ref = module_arg(decl, "roleDefinitionId")
        assert isinstance(role_ref, bicep.Expr) and role_ref.text in main.variables, (
            f"{decl.name}: roleDefinitionId must name a variable holding the role GUID, not {role_ref!r}"
        )
        guid = bicep.literal(main.variables[role_ref.text].value)
        assert isinstance(guid, str) and GUID.fullmatch(guid), f"variable {role_ref.text} is not a GUID literal"
        grants.append(
            {
                "module": decl,
                "role": guid.lower(),
                "variable": role_ref.text,
                "principal": expr_text(module_arg(decl, "principalId")),
                "principal_type": module_arg(decl, "principalType"),
                "kind": bicep.literal(module_arg(decl, "targetKind")) if path == ROLE_MODULE else "tables",
                "target": expr_text(module_arg(decl, "targetName" if path == ROLE_MODULE else "tableNames")),
                "account": expr_text(module_arg(decl, "storageAccountName")) if path == TABLE_ROLE_MODULE else None,
            }
        )
    return grants


def app_tables() -> set[str]:
    """The tables the app reads and writes under its default prefix, as chat/dependencies.py names them."""
    source = (REPO / "chat" / "dependencies.py").read_text(encoding="utf-8")
    suffixes = set(re.findall(r"\{storage\.table_prefix\}(\w+)", source))
    assert suffixes, "chat/dependencies.py names no table as f'{storage.table_prefix}...'"
    prefix = re.search(r'^DEFAULT_TABLE_PREFIX = "(\w+)"$', (REPO / "chat" / "settings.py").read_text(), re.M)[1]
    return {prefix + suffix for suffix in suffixes}


def granted_tables(files, main, grant) -> set[str]:
    """The names of the tables a table role grant covers, each traced to a declared table."""
    account_file, account_src = traced_output(files, main, grant["account"])
    assert resource_behind(account_file, account_src).resource_type == "Microsoft.Storage/storageAccounts"
    m = re.fullmatch(r"(\w+)\.outputs\.(\w+)", grant["target"])
    assert m and m[1] in main.modules, f"tableNames {grant['target']!r} is not a module output"
    target = module_file(files, main, main.modules[m[1]])
    assert target is account_file, "the tables must be those of the storage account granted on"
    value = target.outputs[m[2]].value
    assert isinstance(value, bicep.Arr), f"{target.path.name}: output {m[2]} is not a list of table names"
    names = set()
    for item in value.items:
        text = expr_text(item)
        assert text.endswith(".name"), f"{text!r} is not a table's name"
        table = resource_behind(target, text)
        assert table.resource_type == "Microsoft.Storage/storageAccounts/tableServices/tables" and not table.existing
        names.add(bicep.literal(table.body.get("name")))
    return names


def granted_to_app_identity(files, main, grant) -> bool:
    """Whether a grant's principal is the principal ID of the user-assigned identity."""
    if not re.fullmatch(r"\w+\.outputs\.\w+", grant["principal"]):
        return False
    file, source = traced_output(files, main, grant["principal"])
    return source.endswith(".properties.principalId") and (
        resource_behind(file, source).resource_type == "Microsoft.ManagedIdentity/userAssignedIdentities"
    )


# ---------------------------------------------------------------------------------------------
# checkov


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


# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# Keyless


def test_nothing_under_infra_reads_or_writes_a_key():
    banned = [
        (re.compile(r"listkeys", re.I), "listKeys"),
        (re.compile(r"accountkey\s*=", re.I), "AccountKey="),
        (re.compile(r"api-key", re.I), "api-key"),
        (re.compile(r"\blist[A-Z]\w*\s*\("), "a list*() function"),
        (re.compile(r"SharedAccessSignature|\bsig=", re.I), "a SAS"),
    ]
    scanned = [p for p in INFRA.rglob("*") if p.is_file()] + [REPO / "azure.yaml"]
    assert len(scanned) > 2
    for path in scanned:
        text = path.read_text(encoding="utf-8")
        for pattern, what in banned:
            m = pattern.search(text)
            assert not m, f"{path.relative_to(REPO)}:{text.count(chr(10), 0, m.start()) + 1} has {what}"


def test_storage_account_takes_entra_id_only(files):
    _, st = next(iter(resources_of_type(files, "Microsoft.Storage/storageAccounts")), (None, None))
    assert st is not None, "no storage account"
    assert len(resources_of_type(files, "Microsoft.Storage/storageAccounts")) == 1
    props = st.body.get("properties")
    assert bicep.literal(props.get("allowSharedKeyAccess")) is False
    assert bicep.literal(props.get("minimumTlsVersion")) == "TLS1_2"
    assert bicep.literal(props.get("supportsHttpsTrafficOnly")) is True
    assert bicep.literal(props.get("allowBlobPublicAccess")) is False


def test_chat_tables_and_deployment_container_are_declared(files):
    tables = {
        bicep.literal(r.body.get("name"))
        for _, r in resources_of_type(files, "Microsoft.Storage/storageAccounts/tableServices/tables")
    }
    assert {"chatmessages", "chatconversations"} <= tables, f"chat tables declared: {tables}"
    containers = resources_of_type(files, "Microsoft.Storage/storageAccounts/blobServices/containers")
    assert len(containers) == 1, "expected the one deployment package container"
    assert bicep.literal(containers[0][1].body.get("properties.publicAccess")) == "None"


def test_openai_account_takes_entra_id_only(files, main):
    decl, target = the_module_with(files, main, "Microsoft.CognitiveServices/accounts")
    account = resource(target, "Microsoft.CognitiveServices/accounts")
    assert bicep.literal(account.body.get("kind")) == "OpenAI"
    assert bicep.literal(account.body.get("properties.disableLocalAuth")) is True
    subdomain = account.body.get("properties.customSubDomainName")
    assert subdomain is not None and bicep.literal(subdomain) != "", "Entra ID auth needs a custom subdomain"

    deployment = resource(target, "Microsoft.CognitiveServices/accounts/deployments")
    defaults = {}
    for field, path in (
        ("model", "properties.model.name"),
        ("version", "properties.model.version"),
        ("sku", "sku.name"),
        ("capacity", "sku.capacity"),
    ):
        module_param = expr_text(deployment.body.get(path))
        assert module_param in target.params, f"deployment {path} must be a parameter"
        main_param = expr_text(module_arg(decl, module_param))
        assert main_param in main.params, f"deployment {path} must come from a main.bicep parameter"
        defaults[field] = bicep.literal(main.params[main_param].value)
    assert defaults["model"] == "gpt-4o-mini"
    assert defaults["sku"] == "GlobalStandard"
    assert isinstance(defaults["version"], str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", defaults["version"])
    assert isinstance(defaults["capacity"], int) and 1 <= defaults["capacity"] <= 100


def test_application_insights_takes_entra_id_only(files):
    _, appi = resources_of_type(files, "Microsoft.Insights/components")[0]
    assert bicep.literal(appi.body.get("properties.DisableLocalAuth")) is True
    workspace = expr_text(appi.body.get("properties.WorkspaceResourceId"))
    assert resource_behind(next(f for f in files.values() if appi in f.resources), workspace).resource_type == (
        "Microsoft.OperationalInsights/workspaces"
    )


# ---------------------------------------------------------------------------------------------
# One identity, exactly the roles it needs


def test_one_user_assigned_identity_and_no_system_assigned_one(files, main):
    identities = resources_of_type(files, "Microsoft.ManagedIdentity/userAssignedIdentities")
    assert len(identities) == 1, f"expected one user-assigned identity, found {len(identities)}"
    for file in files.values():
        assert "SystemAssigned" not in file.path.read_text(encoding="utf-8").replace("SystemAssignedIdentity", ""), (
            f"{file.path.name} declares a system-assigned identity"
        )
    decl, target = the_module_with(files, main, "Microsoft.Web/sites")
    site = resource(target, "Microsoft.Web/sites")
    assert bicep.literal(site.body.get("identity.type")) == "UserAssigned"
    keys = list(site.body.get("identity.userAssignedIdentities").props)
    assert keys == ["'${identityId}'"], f"the app must run as the identity passed in, not {keys}"
    src_file, src = traced_output(files, main, expr_text(module_arg(decl, "identityId")))
    assert resource_behind(src_file, src).resource_type == "Microsoft.ManagedIdentity/userAssignedIdentities"
    assert src.endswith(".id")


def test_role_guids_are_named_variables_and_no_broad_role_appears(files):
    for file in files.values():
        source = file.path.read_text(encoding="utf-8")
        for m in GUID.finditer(source):
            guid = m.group().lower()
            assert guid not in BROAD_ROLES, f"{file.path.name} names the {BROAD_ROLES[guid]} role"
            line = source[source.rfind("\n", 0, m.start()) + 1 : source.find("\n", m.end())]
            named = re.fullmatch(r"\s*var\s+(\w+)\s*=\s*'" + m.group() + r"'\s*(//.*)?", line)
            assert named, f"{file.path.name}: bare GUID {m.group()} outside a `var` declaration: {line.strip()!r}"
            role = ROLE_NAMES.get(guid)
            assert role, f"{file.path.name}: {named[1]} holds {guid}, which is none of the roles this app needs"
            assert role.replace(" ", "").lower() in named[1].lower(), f"{named[1]} holds {role}: name it so"


def test_role_module_grants_exactly_the_role_it_is_given(files):
    module = files[ROLE_MODULE]
    assignments = [r for r in module.resources if r.resource_type == "Microsoft.Authorization/roleAssignments"]
    assert {r.condition for r in assignments} == {f"targetKind == '{kind}'" for kind in TARGET_TYPES}
    allowed_kinds = {bicep.literal(v) for v in module.params["targetKind"].decorators["allowed"][0].items}
    assert allowed_kinds == set(TARGET_TYPES)
    for r in assignments:
        kind = re.fullmatch(r"targetKind == '(\w+)'", r.condition)[1]
        scope = resource_behind(module, expr_text(r.body.get("scope")))
        assert scope.existing and scope.resource_type == TARGET_TYPES[kind], f"{r.name} is scoped to {scope.type}"
        assert expr_text(scope.body.get("name")) == "targetName"
        assert expr_text(r.body.get("properties.principalId")) == "principalId"
        assert expr_text(r.body.get("properties.principalType")) == "principalType"
        role = expr_text(r.body.get("properties.roleDefinitionId"))
        assert role == "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)"
    for file in files.values():
        if file.path not in (ROLE_MODULE, TABLE_ROLE_MODULE):
            assert not any(r.resource_type == "Microsoft.Authorization/roleAssignments" for r in file.resources), (
                f"{file.path.name} assigns a role outside the role modules"
            )


def test_table_role_module_grants_the_role_on_each_table_it_is_given_and_nothing_else(files):
    module = files[TABLE_ROLE_MODULE]
    assignments = [r for r in module.resources if r.resource_type == "Microsoft.Authorization/roleAssignments"]
    assert len(assignments) == 1 and isinstance(assignments[0].value, bicep.Loop)
    assignment = assignments[0]
    m = re.fullmatch(r"(\w+) in range\(0, length\(tableNames\)\)", assignment.value.header)
    assert m, f"the assignment must loop over tableNames, not {assignment.value.header!r}"
    assert expr_text(assignment.body.get("scope")) == f"tables[{m[1]}]", "each grant is scoped to its own table"
    assert expr_text(assignment.body.get("name")) == f"guid(tables[{m[1]}].id, principalId, roleDefinitionId)"

    tables = resource_behind(module, "tables")
    assert tables.existing and tables.resource_type == "Microsoft.Storage/storageAccounts/tableServices/tables"
    assert isinstance(tables.value, bicep.Loop) and re.fullmatch(r"(\w+) in tableNames", tables.value.header)
    assert expr_text(tables.body.get("name")) == tables.value.header.split(" ", 1)[0]
    service = resource_behind(module, expr_text(tables.body.get("parent")))
    assert service.existing and service.resource_type == "Microsoft.Storage/storageAccounts/tableServices"
    assert bicep.literal(service.body.get("name")) == "default"
    account = resource_behind(module, expr_text(service.body.get("parent")))
    assert account.existing and account.resource_type == "Microsoft.Storage/storageAccounts"
    assert expr_text(account.body.get("name")) == "storageAccountName"

    assert expr_text(assignment.body.get("properties.principalId")) == "principalId"
    assert expr_text(assignment.body.get("properties.principalType")) == "principalType"
    role = expr_text(assignment.body.get("properties.roleDefinitionId"))
    assert role == "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)"


def test_app_identity_holds_exactly_the_roles_it_needs(files, main):
    identity_principal = [g for g in role_grants(files, main) if granted_to_app_identity(files, main, g)]
    held = {g["role"]: g for g in identity_principal}
    assert len(held) == len(identity_principal), "the identity is granted a role twice"
    extra = set(held) - set(APP_ROLES) - {QUEUE_DATA_CONTRIBUTOR}
    assert not extra, f"the identity holds roles it does not need: {[ROLE_NAMES.get(r, r) for r in extra]}"
    missing = set(APP_ROLES) - set(held)
    assert not missing, f"the identity lacks {[ROLE_NAMES[r] for r in missing]}"
    for role, grant in held.items():
        kind = APP_ROLES.get(role, "storageAccount")
        assert grant["kind"] == kind, f"{ROLE_NAMES[role]} must be granted on the {kind}, not {grant['kind']}"
        if kind == "tables":
            assert granted_tables(files, main, grant) == app_tables(), "the table role covers exactly the app's tables"
        else:
            target_file, target_src = traced_output(files, main, grant["target"])
            assert resource_behind(target_file, target_src).resource_type == TARGET_TYPES[kind]
        assert bicep.literal(grant["principal_type"]) == "ServicePrincipal"
        assert grant["module"].condition is None, f"{ROLE_NAMES[role]} must not be conditional"


def test_table_data_is_granted_on_the_tables_never_on_the_account(files, main):
    table_roles = [g for g in role_grants(files, main) if g["role"] == TABLE_DATA_CONTRIBUTOR]
    assert table_roles, "nobody can read the chat tables"
    for g in table_roles:
        assert g["kind"] == "tables", f"{g['module'].name} grants table data on the {g['kind']}"
        assert granted_tables(files, main, g) == app_tables()


def test_the_deploying_user_gets_data_roles_only_when_asked(files, main):
    user = [g for g in role_grants(files, main) if g["principal"] == "principalId"]
    assert {g["role"]: g["kind"] for g in user} == USER_ROLES
    for g in user:
        # azd always fills AZURE_PRINCIPAL_ID: a principal alone must not open everyone's history.
        assert g["module"].condition == "developerAccess && !empty(principalId)", (
            f"{g['module'].name}: the user's roles must be opt-in, not {g['module'].condition!r}"
        )
        assert expr_text(g["principal_type"]) == "principalType"
        if g["kind"] == "tables":
            assert granted_tables(files, main, g) == app_tables()
    assert bicep.literal(main.params["developerAccess"].value) is False
    assert main.params["developerAccess"].type == "bool"
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert parameters["developerAccess"]["value"] == "${AZURE_DEVELOPER_ACCESS=false}"
    assert bicep.literal(main.params["principalId"].value) == ""
    assert bicep.literal(main.params["principalType"].value) == "User"
    other = [
        g
        for g in role_grants(files, main)
        if g["principal"] != "principalId" and not granted_to_app_identity(files, main, g)
    ]
    assert not other, f"roles granted to unknown principals: {[g['principal'] for g in other]}"


# ---------------------------------------------------------------------------------------------
# Trust in x-ms-client-principal only behind authentication the deployment sets up

CLIENT_ID = "11111111-2222-3333-4444-555555555555"
STATIC_WEB_APP_ID = "/subscriptions/s/resourceGroups/rg-web/providers/Microsoft.Web/staticSites/web"


def main_value(main, values: dict[str, object]):
    """A lookup for bicep.evaluate: the given parameter values, and main.bicep's variables (an
    interpolated string as its source text)."""

    def lookup(name: str) -> object:
        if name in values:
            return values[name]
        assert name in main.variables, f"main.bicep: {name} is neither a scenario parameter nor a variable"
        value = main.variables[name].value
        if isinstance(value, bicep.Str):
            return value.raw if value.literal is None else value.literal
        return bicep.evaluate(expr_text(value), lookup)

    return lookup


def authentication_settings(target):
    found = [
        r
        for r in target.resources
        if r.resource_type == "Microsoft.Web/sites/config" and bicep.literal(r.body.get("name")) == "authsettingsV2"
    ]
    assert len(found) == 1, f"{target.path.name}: expected one authsettingsV2 config, found {len(found)}"
    return found[0]


def test_trust_mode_parameters_come_from_azd(main):
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    for name, variable in (
        ("authClientId", "AZURE_AUTH_CLIENT_ID"),
        ("authTenantId", "AZURE_AUTH_TENANT_ID"),
        ("staticWebAppResourceId", "AZURE_STATIC_WEB_APP_ID"),
    ):
        assert parameters[name]["value"] == "${" + variable + "}", f"{name} must come from {variable}"
        assert bicep.literal(main.params[name].value) == "", f"{name} must default to empty"
    assert parameters["trustClientPrincipal"]["value"] == "${CHAT_TRUST_CLIENT_PRINCIPAL=false}"


def test_the_openai_doors_settings_come_from_azd_to_the_app(files, main):
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert parameters["modelAliases"]["value"] == "${CHAT_MODEL_ALIASES}"
    assert parameters["refuseInstructions"]["value"] == "${CHAT_REFUSE_INSTRUCTIONS=false}"
    assert bicep.literal(main.params["modelAliases"].value) == ""
    assert bicep.literal(main.params["refuseInstructions"].value) is False
    _, target = the_module_with(files, main, "Microsoft.Web/sites")
    settings = app_settings(resource(target, "Microsoft.Web/sites"))
    assert expr_text(settings["CHAT_MODEL_ALIASES"]) == "modelAliases"
    assert "refuseInstructions" in expr_text(settings["CHAT_REFUSE_INSTRUCTIONS"])


@pytest.mark.parametrize(
    ("trust", "client_id", "static_web_app"),
    list(itertools.product([False, True], ["", CLIENT_ID], ["", STATIC_WEB_APP_ID])),
    ids=lambda value: {False: "no-trust", True: "trust", "": "none", CLIENT_ID: "entra", STATIC_WEB_APP_ID: "swa"}[
        value
    ],
)
def test_trust_mode_deploys_only_behind_authentication_it_configures(files, main, trust, client_id, static_web_app):
    app_decl, app = the_module_with(files, main, "Microsoft.Web/sites")
    link_decl, _ = the_module_with(files, main, "Microsoft.Web/staticSites/linkedBackends")
    assert expr_text(module_arg(app_decl, "trustClientPrincipal")) == "trustClientPrincipal"
    assert expr_text(module_arg(app_decl, "authClientId")) == "authClientId"
    # The guard is ARM's validation of the function app module's parameters: it always deploys that
    # module, and validates its parameters before deploying anything of it.
    assert app_decl.condition is None
    assert app.params["authentication"].value is None, "the guard parameter must have no default"
    allowed = {bicep.literal(v) for v in app.params["authentication"].decorators["allowed"][0].items}
    assert allowed == {"none", "appServiceAuthentication", "staticWebAppLink"}
    lookup = main_value(
        main,
        {
            "trustClientPrincipal": trust,
            "authClientId": client_id,
            "staticWebAppResourceId": static_web_app,
            "authTenantId": "",
            "environmentName": "chat-dev",
        },
    )
    mode = bicep.evaluate(expr_text(module_arg(app_decl, "authentication")), lookup)
    refused = bool(client_id and static_web_app) or (trust and not client_id and not static_web_app)
    if refused:
        # ARM's error quotes the refused value: it is the reason, naming what to set.
        assert mode not in allowed, "the deployment must refuse this combination"
        for variable in ("AZURE_AUTH_CLIENT_ID", "AZURE_STATIC_WEB_APP_ID"):
            assert variable in mode, f"the refusal must name {variable}: {mode}"
        if trust and not client_id:
            assert "CHAT_TRUST_CLIENT_PRINCIPAL" in mode
        return
    assert mode in allowed, f"a deployment that is safe was refused: {mode}"
    configures = bicep.evaluate(authentication_settings(app).condition, {"authentication": mode}.__getitem__)
    links = bicep.evaluate(link_decl.condition, lookup)
    assert configures is bool(client_id)
    assert links is bool(static_web_app)
    if trust:
        assert configures != links, "trust needs exactly one guard: App Service authentication or the link"
    else:
        assert mode != "none" or not (configures or links)


def test_app_service_authentication_requires_a_signed_in_user_for_every_route_but_health(files, main):
    app_decl, app = the_module_with(files, main, "Microsoft.Web/sites")
    auth = authentication_settings(app)
    assert expr_text(auth.body.get("parent")) == resource(app, "Microsoft.Web/sites").name
    props = auth.body.get("properties")
    assert bicep.literal(props.get("platform.enabled")) is True
    assert bicep.literal(props.get("globalValidation.requireAuthentication")) is True
    assert bicep.literal(props.get("globalValidation.unauthenticatedClientAction")) == "Return401"
    excluded = props.get("globalValidation.excludedPaths")
    assert [bicep.literal(v) for v in excluded.items] == ["/api/health"], "only the health probe is anonymous"
    providers = props.get("identityProviders")
    assert list(providers.props) == ["azureActiveDirectory"], "Entra ID is the only way in"
    entra = providers.props["azureActiveDirectory"]
    assert bicep.literal(entra.get("enabled")) is True
    assert expr_text(entra.get("registration.clientId")) == "authClientId"
    assert expr_text(entra.get("registration.openIdIssuer")) == "authOpenIdIssuer"
    assert entra.get("registration.clientSecretSettingName") is None, "no client secret: sign-in stays keyless"
    audiences = [
        v.raw if isinstance(v, bicep.Str) else expr_text(v) for v in entra.get("validation.allowedAudiences").items
    ]
    assert audiences == ["authClientId", "'api://${authClientId}'"]
    assert bicep.literal(props.get("login.tokenStore.enabled")) is False
    assert bicep.literal(props.get("httpSettings.requireHttps")) is True

    issuer = main.variables[expr_text(module_arg(app_decl, "authOpenIdIssuer"))].value
    assert issuer.raw == "'${environment().authentication.loginEndpoint}${authTenant}/v2.0'"
    assert expr_text(main.variables["authTenant"].value) == "empty(authTenantId) ? tenant().tenantId : authTenantId"


def test_a_static_web_app_link_is_the_other_guard(files, main):
    link_decl, link = the_module_with(files, main, "Microsoft.Web/staticSites/linkedBackends")
    backend = resource(link, "Microsoft.Web/staticSites/linkedBackends")
    site = resource_behind(link, expr_text(backend.body.get("parent")))
    assert site.existing and site.resource_type == "Microsoft.Web/staticSites"
    assert expr_text(site.body.get("name")) in link.params
    source_file, source = traced_output(
        files, main, expr_text(module_arg(link_decl, expr_text(backend.body.get("properties.backendResourceId"))))
    )
    assert source.endswith(".id") and resource_behind(source_file, source).resource_type == "Microsoft.Web/sites"
    assert expr_text(module_arg(link_decl, expr_text(backend.body.get("properties.region")))) == "location"
    scope = expr_text(link_decl.body.get("scope"))
    assert scope.startswith("resourceGroup(") and "staticWebAppIdParts" in scope
    assert expr_text(main.variables["staticWebAppIdParts"].value) == "split(staticWebAppResourceId, '/')"


# ---------------------------------------------------------------------------------------------
# The function app


def test_function_app_runs_python_311_on_flex_consumption(files, main):
    _, target = the_module_with(files, main, "Microsoft.Web/sites")
    plan = resource(target, "Microsoft.Web/serverfarms")
    assert bicep.literal(plan.body.get("sku.name")) == "FC1"
    assert bicep.literal(plan.body.get("sku.tier")) == "FlexConsumption"
    assert bicep.literal(plan.body.get("properties.reserved")) is True

    site = resource(target, "Microsoft.Web/sites")
    assert "functionapp" in bicep.literal(site.body.get("kind"))
    assert expr_text(site.body.get("properties.serverFarmId")) == f"{plan.name}.id"
    assert bicep.literal(site.body.get("properties.httpsOnly")) is True
    assert bicep.literal(site.body.get("properties.siteConfig.minTlsVersion")) == "1.2"
    assert bicep.literal(site.body.get("properties.functionAppConfig.runtime.name")) == "python"
    assert bicep.literal(site.body.get("properties.functionAppConfig.runtime.version")) == "3.11"
    storage = site.body.get("properties.functionAppConfig.deployment.storage")
    assert bicep.literal(storage.get("type")) == "blobContainer"
    assert bicep.literal(storage.get("authentication.type")) == "UserAssignedIdentity"
    assert expr_text(storage.get("authentication.userAssignedIdentityResourceId")) == "identityId"
    assert re.search(r"'azd-service-name':\s*'api'", expr_text(site.body.get("tags")))

    policies = {
        bicep.literal(r.body.get("name")): bicep.literal(r.body.get("properties.allow"))
        for r in target.resources
        if r.resource_type == "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
    }
    assert policies == {"ftp": False, "scm": False}, "FTP and SCM basic-auth publishing must be off"


def test_function_app_settings_are_what_the_app_reads(files, main):
    decl, target = the_module_with(files, main, "Microsoft.Web/sites")
    settings = app_settings(resource(target, "Microsoft.Web/sites"))
    missing = [name for name in REQUIRED_APP_SETTINGS if name not in settings]
    assert not missing, f"app settings missing: {missing}"
    assert "AzureWebJobsStorage__accountName" in settings or "AzureWebJobsStorage__blobServiceUri" in settings
    forbidden = [name for name in settings if name in FORBIDDEN_APP_SETTINGS]
    assert not forbidden, f"app settings that must not be set on a keyless Flex Consumption app: {forbidden}"

    assert bicep.literal(settings["PYTHON_ENABLE_INIT_INDEXING"]) == "1"
    assert bicep.literal(settings["AzureWebJobsStorage__credential"]) == "managedidentity"
    assert expr_text(settings["AzureWebJobsStorage__clientId"]) == "identityClientId"
    assert expr_text(settings["AZURE_CLIENT_ID"]) == "identityClientId"
    auth = settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
    assert isinstance(auth, bicep.Str) and auth.raw == "'ClientId=${identityClientId};Authorization=AAD'"

    def source_of(setting: str) -> tuple[object, str]:
        module_param = expr_text(settings[setting])
        assert module_param in target.params, f"{setting} must come from a module parameter"
        return traced_output(files, main, expr_text(module_arg(decl, module_param)))

    file, text = source_of("AZURE_CLIENT_ID")
    assert text.endswith(".properties.clientId")
    assert resource_behind(file, text).resource_type == "Microsoft.ManagedIdentity/userAssignedIdentities"
    file, text = source_of("CHAT_STORAGE_ENDPOINT")
    assert text.endswith(".properties.primaryEndpoints.table")
    assert resource_behind(file, text).resource_type == "Microsoft.Storage/storageAccounts"
    file, text = source_of("AZURE_OPENAI_ENDPOINT")
    assert text.endswith(".properties.endpoint")
    assert resource_behind(file, text).resource_type == "Microsoft.CognitiveServices/accounts"

    trust = expr_text(settings["CHAT_TRUST_CLIENT_PRINCIPAL"])
    assert re.fullmatch(r"(\w+) \? 'true' : 'false'", trust), f"CHAT_TRUST_CLIENT_PRINCIPAL is {trust!r}"
    main_param = expr_text(module_arg(decl, trust.split(" ", 1)[0]))
    assert bicep.literal(main.params[main_param].value) is False, "CHAT_TRUST_CLIENT_PRINCIPAL must default to false"
    main_param = expr_text(module_arg(decl, expr_text(settings["CHAT_AUTH_LEVEL"])))
    assert bicep.literal(main.params[main_param].value) == "function", "routes must require a function key by default"


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


# ---------------------------------------------------------------------------------------------
# The reader itself, on the Bicep shapes it must not misread


def test_reader_evaluates_guards_as_arm_does():
    names = {"on": True, "off": False, "empty_text": "", "text": "x"}.__getitem__
    assert bicep.evaluate("on && !empty(text) ? text : 'none'", names) == "x"
    assert bicep.evaluate("off || empty(empty_text)", names) is True
    assert bicep.evaluate("text == 'x' && text != 'y'", names) is True
    assert bicep.evaluate("off ? 'a' : on ? 'b' : 'c'", names) == "b"
    # Short-circuits: the branch not taken is never evaluated, so it may name what does not exist.
    assert bicep.evaluate("on ? 'kept' : unknown", names) == "kept"
    assert bicep.evaluate("off && unknown", names) is False
    with pytest.raises(KeyError):
        bicep.evaluate("on && unknown", names)
    with pytest.raises(bicep.BicepSyntaxError):
        bicep.evaluate("length(text)", names)


def test_reader_parses_strings_objects_conditions_and_loops():
    decls = bicep.parse(
        "// comment with 'quote'\n"
        "@description('It\\'s ${not} interpolated')\n"
        "param p string = 'a\\'b'\n"
        "var s = 'x${p}y${'z'}'\n"
        "var m = '''\nline ${x}\n'''\n"
        "resource r 'A.B/c@2024-01-01' existing = {\n  name: 'n'\n}\n"
        "module m1 'mod.bicep' = if (!empty(p)) {\n"
        "  name: 'm'\n  params: {\n    'quoted-key': true\n    list: [\n      1\n      'two'\n    ]\n"
        "    e: cond ? { a: 1 } : {}\n  }\n}\n"
        "resource many 'A.B/c@2024-01-01' = [for i in range(0, 2): {\n  name: 'x${i}'\n  resource child 'd' = {\n"
        "    name: 'c'\n  }\n}]\n"
    )
    by_name = {d.name: d for d in decls}
    assert by_name["p"].decorators["description"][0].literal is None
    assert bicep.literal(by_name["p"].value) == "a'b"
    assert by_name["s"].value.literal is None and by_name["s"].value.raw == "'x${p}y${'z'}'"
    assert by_name["m"].value.literal == "line ${x}\n"
    assert by_name["r"].existing and by_name["r"].resource_type == "A.B/c"
    m1 = by_name["m1"]
    assert m1.condition == "!empty(p)"
    assert bicep.literal(m1.body.get("params.quoted-key")) is True
    assert [bicep.literal(v) for v in m1.body.get("params.list").items] == [1, "two"]
    assert m1.body.get("params.e") == bicep.Expr("cond ? { a: 1 } : {}")
    many = by_name["many"]
    assert isinstance(many.value, bicep.Loop) and many.value.header == "i in range(0, 2)"
    assert [d.name for d in many.body.nested] == ["child"]


@pytest.mark.parametrize(
    "source",
    [
        "resource r 'A/b@1' = {\n  name: 'x'\n",  # unclosed object
        "var v = 'unterminated\n",
        "param p string = {\n  a: 1\n  a: 2\n}\n",  # duplicate property
        "frobnicate x = 1\n",
    ],
)
def test_reader_refuses_what_it_does_not_understand(source):
    with pytest.raises(bicep.BicepSyntaxError):
        bicep.parse(source)
