"""Keyless everywhere in infra/: no key read or written, and storage, Azure OpenAI and Application
Insights taking Entra ID only."""

from __future__ import annotations

import re

from tests.support import bicep
from tests.support.infra import (
    INFRA,
    REPO,
    expr_text,
    module_arg,
    resource,
    resource_behind,
    resources_of_type,
    the_module_with,
)

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
