"""Trust in x-ms-client-principal only behind authentication the deployment sets up: App Service
authentication with Entra ID or a Static Web App link, the guard that refuses any other combination,
and the settings azd passes to the app."""

from __future__ import annotations

import itertools
import json

import pytest

from tests.support import bicep
from tests.support.infra import (
    INFRA,
    app_settings,
    expr_text,
    module_arg,
    resource,
    resource_behind,
    the_module_with,
    traced_output,
)

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
