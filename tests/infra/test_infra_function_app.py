"""The function app in infra/: Python 3.11 on Flex Consumption, deployed keyless, with the app
settings the app reads and none that a keyless Flex Consumption app must not have."""

from __future__ import annotations

import re

from tests.support import bicep
from tests.support.infra import (
    app_settings,
    expr_text,
    module_arg,
    resource,
    resource_behind,
    the_module_with,
    traced_output,
)

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
