"""The OpenAPI document itself: valid OpenAPI 3.1, every route and method in it, built once, and
schemas that refuse what the routes never send. tests/test_openapi_e2e.py checks real answers."""

from __future__ import annotations

import json
import re
import tomllib
from types import SimpleNamespace

import jsonschema
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from starlette.requests import Request

from chat.engine.errors import ConfigurationError, StorageUnavailable, TableMissing
from chat.web import health, openapi, openapi_route, operations
from chat.web.callers import IgnoredPrincipals
from chat.web.routes import ROUTES
from chat.web.routing import Method, Route, handle
from tests.support import ROOT
from tests.support.functions import triggers
from tests.support.openapi_doc import Described


@pytest.fixture(scope="module")
def document() -> dict:
    return openapi.document(ROUTES)


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate(document, cls=OpenAPIV31SpecValidator)


def test_every_route_and_every_method_is_in_it(document):
    assert set(document["paths"]) == {"/api/" + route.path for route in ROUTES}
    for route in ROUTES:
        item = document["paths"]["/api/" + route.path]
        methods = {key for key in item if key != "parameters"}
        assert methods == {method.lower() for method in route.methods}, route.name
        named = re.findall(r"{(\w+)}", route.path)
        assert [p["name"] for p in item.get("parameters", [])] == named, route.name
        for method in methods:
            responses = item[method]["responses"]
            assert {"405", "5XX"} <= set(responses), (route.name, method)
            assert any(status.startswith("2") for status in responses), (route.name, method)


def test_a_method_without_its_operation_fails_the_build():
    route = ROUTES[0]
    with pytest.raises(TypeError, match="operation"):
        Method(route.methods["POST"].handler)  # type: ignore[call-arg]


def test_operation_ids_are_unique(document):
    ids = [op["operationId"] for item in document["paths"].values() for key, op in item.items() if key != "parameters"]
    assert len(ids) == len(set(ids))


def test_links_lead_from_what_creates_a_thing_to_what_reads_it_with_the_parameters_it_takes(document):
    operations = {
        op["operationId"]: (item, op)
        for item in document["paths"].values()
        for key, op in item.items()
        if key != "parameters"
    }
    linked = {}
    expression = re.compile(r"\$(response\.body#/[\w/]+|request\.path\.\w+)")
    for _, op in operations.values():
        for answer in op["responses"].values():
            for link in answer.get("links", {}).values():
                item, _ = operations[link["operationId"]]
                taken = {p["name"] for p in item.get("parameters", [])}
                assert set(link["parameters"]) == taken, link
                assert all(expression.fullmatch(value) for value in link["parameters"].values()), link
                linked.setdefault(op["operationId"], set()).add(link["operationId"])
    assert linked == {
        "chat": {"list_messages", "delete_conversation"},
        "create_response": {"get_response", "list_input_items", "delete_response"},
        "create_v1_conversation": {
            "get_v1_conversation",
            "update_v1_conversation",
            "delete_v1_conversation",
            "create_items",
            "list_items",
        },
        "create_items": {"get_item", "delete_item"},
    }


def test_anonymous_operations_are_the_routes_the_function_app_registers_anonymous(document):
    anonymous = {name for name, trigger in triggers().items() if trigger.auth_level.name == "ANONYMOUS"}
    described = {
        route.name
        for route in ROUTES
        for key, op in document["paths"]["/api/" + route.path].items()
        if key != "parameters" and op.get("security") == []
    }
    assert described == anonymous == {"health", "openapi"}
    schemes = document["components"]["securitySchemes"]
    assert schemes["functionKey"] == {**schemes["functionKey"], "in": "header", "name": "x-functions-key"}
    assert schemes["functionKeyQuery"] == {**schemes["functionKeyQuery"], "in": "query", "name": "code"}
    assert "CHAT_TRUST_CLIENT_PRINCIPAL" in schemes["clientPrincipal"]["description"]


def test_the_version_is_the_projects(document):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert document["info"]["version"] == project["version"]


def test_every_schema_it_refers_to_is_in_it_and_no_other(document):
    text = json.dumps(document)
    referred = set(re.findall(r'"#/components/schemas/([^"]+)"', text))
    assert referred == set(document["components"]["schemas"])
    # The kinds openai/requests refuses are not offered as schemas of a request.
    assert not [name for name in document["components"]["schemas"] if name.startswith(("_", "Unsupported"))]


def test_a_429_says_retry_after_and_a_405_allow(document):
    for name, response in document["components"]["responses"].items():
        headers = response.get("headers", {})
        if name.endswith("429"):
            assert headers["Retry-After"]["required"] is True, name
        if name.endswith("405"):
            assert headers["Allow"]["required"] is True, name


def test_the_schemas_refuse_what_no_route_sends(document):
    """The check bites: an answer with a wrong field, a wrong type or a missing field fails."""
    described = Described(document)
    answer = {
        "message": {"role": "assistant", "content": "Hi"},
        "sessionState": "s",
        "context": {"finish_reason": "stop", "usage": {"prompt_tokens": 1, "completion_tokens": 2}},
    }
    chat = described.validator("/api/chat", "POST", 200, "application/json")
    chat.validate(answer)
    for wrong in (
        {**answer, "session_state": "s"},
        {**answer, "sessionState": 7},
        {key: value for key, value in answer.items() if key != "context"},
        {**answer, "context": {"finish_reason": "stop", "usage": None}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            chat.validate(wrong)
    line = described.validator("/api/chat/stream", "POST", 200, "application/jsonl")
    line.validate({"delta": {"content": "Hel"}})
    with pytest.raises(jsonschema.ValidationError):
        line.validate({"delta": {"content": "Hel"}, "extra": 1})

    conversation = {"id": "conv_1", "object": "conversation", "created_at": 1, "metadata": {}}
    v1 = described.validator("/api/v1/conversations/{id}", "GET", 200, "application/json")
    v1.validate(conversation)
    for wrong in ({**conversation, "object": "conversations"}, {k: v for k, v in conversation.items() if k != "id"}):
        with pytest.raises(jsonschema.ValidationError):
            v1.validate(wrong)
    error = described.validator("/api/v1/conversations/{id}", "GET", 404, "application/json")
    error.validate({"error": {"message": "No.", "type": "invalid_request_error", "param": None, "code": "x"}})
    with pytest.raises(jsonschema.ValidationError):
        error.validate({"error": {"code": "conversation_not_found"}})


def test_request_bodies_are_the_parsers_models(document):
    schemas = document["components"]["schemas"]
    body = document["paths"]["/api/chat"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ChatRequestBody"}
    assert schemas["ChatRequestBody"]["properties"]["messages"]["maxItems"] == 10_000
    response = schemas["ResponseBody"]
    assert response["additionalProperties"] is False and "model" in response["required"]
    tool = response["properties"]["tools"]["anyOf"][0]["items"]
    assert tool == {"oneOf": [{"$ref": "#/components/schemas/FunctionToolIn"}]}


def request(method: str, path: str) -> Request:
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "headers": []}
    return Request(scope)


@pytest.mark.anyio
async def test_it_is_built_once_per_process_and_served_even_misconfigured():
    built = []

    def routes():
        built.append(1)
        return ROUTES

    served = openapi_route.Document(routes)
    route = Route(
        "openapi", "openapi.json", {"GET": Method(served.get, operations.OPENAPI)}, misconfigured=served.misconfigured
    )

    async def misconfigured():
        raise ConfigurationError("Set AZURE_OPENAI_ENDPOINT.")

    first = await handle(route, request("GET", "/api/openapi.json"), misconfigured)
    second = await handle(route, request("GET", "/api/openapi.json"), misconfigured)
    assert first.status_code == second.status_code == 200
    assert first.headers["content-type"] == "application/json"
    assert first.body == second.body and json.loads(first.body)["openapi"] == "3.1.0"
    assert built == [1]
    refused = await handle(route, request("POST", "/api/openapi.json"), misconfigured)
    assert refused.status_code == 405 and refused.headers["allow"] == "GET"


class Probe:
    """Storage or the model as health probes them: answering, or failing with `error`."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    async def ping(self) -> None:
        if self.error:
            raise self.error

    check = ping


@pytest.mark.anyio
async def test_healths_503_answers_are_documented(document):
    described = Described(document)
    deps = SimpleNamespace(
        messages_table=Probe(TableMissing("chatmessages")),
        conversations_table=Probe(StorageUnavailable("down")),
        model=Probe(),
        settings=SimpleNamespace(uses_azure_openai=True),
        ignored_principals=IgnoredPrincipals(),
    )
    deps.ignored_principals.seen = True  # the warnings are documented too
    degraded = await health.health(request("GET", "/api/health"), {}, deps)
    misconfigured = health.misconfigured(ConfigurationError("Set AZURE_OPENAI_ENDPOINT."))
    for answer, status in ((degraded, "degraded"), (misconfigured, "misconfigured")):
        assert answer.status_code == 503
        [body] = described.check("/api/health", "GET", 503, answer.headers, answer.body)
        assert body["status"] == status
    assert json.loads(degraded.body)["missing_tables"] == ["chatmessages"]


def test_a_worker_that_never_serves_the_document_does_not_import_its_builder():
    import subprocess
    import sys

    probe = "import sys, function_app; print(sorted(m for m in sys.modules if m.startswith('chat.web.openapi')))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "['chat.web.openapi_route']"
