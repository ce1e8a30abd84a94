"""One user-assigned identity holding exactly the roles the app needs, granted through the two role
modules on the resources (or the tables) they belong to, and the deploying user's data roles only
when asked for."""

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
    resource_behind,
    resources_of_type,
    the_module_with,
    traced_output,
)

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
    QUEUE_DATA_CONTRIBUTOR: "storageAccount",  # the background queue and the host's poison queue
}
# What the deploying user may get, when asked for, to run the app locally against the deployed resources.
USER_ROLES = {OPENAI_USER: "openAiAccount", TABLE_DATA_CONTRIBUTOR: "tables"}
TARGET_TYPES = {
    "storageAccount": "Microsoft.Storage/storageAccounts",
    "openAiAccount": "Microsoft.CognitiveServices/accounts",
    "applicationInsights": "Microsoft.Insights/components",
}
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


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
    extra = set(held) - set(APP_ROLES)
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
