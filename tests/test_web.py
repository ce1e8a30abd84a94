"""The front doors' toolkit and handlers, called in-process: handlers are given their dependencies,
and the error body is the door's."""

from __future__ import annotations

import ast
import dataclasses
import json
import logging
import uuid
from pathlib import Path

import pytest
from azure.identity.aio import ManagedIdentityCredential
from starlette.requests import Request
from starlette.responses import Response

from chat.dependencies import Dependencies
from chat.engine.errors import ChatError, ConfigurationError
from chat.settings import Settings
from chat.web import chat, health, history, routes
from chat.web.operations import Answer, Operation
from chat.web.routing import Method, Route, handle
from chat.web.toolkit import Params
from tests.support.functions import body_of, request

pytestmark = pytest.mark.anyio

WEB = Path(__file__).resolve().parent.parent / "chat" / "web"


@pytest.fixture
async def deps(standins, azurite, monkeypatch):
    """Dependencies built from a Settings object, with no app setting in the environment: a handler
    that reached for the worker's own dependencies would find the app misconfigured."""
    for name in ("AZURE_OPENAI_ENDPOINT", "OPENAI_BASE_URL", "CHAT_STORAGE_CONNECTION_STRING"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", standins.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", standins.identity_header)
    settings = Settings.from_env(
        {
            "AZURE_OPENAI_ENDPOINT": standins.model_url,
            "AZURE_OPENAI_CHAT_DEPLOYMENT": standins.deployment,
            "CHAT_STORAGE_CONNECTION_STRING": azurite.connection_string,
            "CHAT_TABLE_PREFIX": "web" + uuid.uuid4().hex[:12],
        }
    )
    built = Dependencies.build(settings, credential=ManagedIdentityCredential())
    yield built
    await built.aclose()


async def test_handlers_called_with_dependencies_built_from_settings(deps):
    turn = json.dumps({"messages": [{"role": "user", "content": "handed in"}], "sessionState": "web/1"}).encode()
    answered = await chat.reply(request("POST", "/api/chat", turn), {}, deps)
    assert json.loads(answered.body)["message"]["content"] == "Echo #0: handed in"

    streamed = await chat.stream(request("POST", "/api/chat/stream", turn.replace(b"handed in", b"again")), {}, deps)
    lines = [json.loads(line) for line in (await body_of(streamed)).splitlines()]
    assert "".join(line.get("delta", {}).get("content", "") for line in lines) == "Echo #2: again"

    listed = await history.messages(request("GET", "/api/conversations/web%2F1/messages"), {"id": "web%2F1"}, deps)
    assert [m["content"] for m in json.loads(listed.body)["messages"]] == [
        "handed in",
        "Echo #0: handed in",
        "again",
        "Echo #2: again",
    ]
    [conversation] = json.loads((await history.conversations(request("GET", "/api/conversations"), {}, deps)).body)[
        "conversations"
    ]
    assert conversation["id"] == "web/1" and conversation["message_count"] == 4

    assert (
        await history.delete(request("DELETE", "/api/conversations/web%2F1"), {"id": "web%2F1"}, deps)
    ).status_code == 204
    checked = await health.health(request("GET", "/api/health"), {}, deps)
    assert checked.status_code == 200 and json.loads(checked.body)["checks"] == {"storage": "ok", "model": "ok"}


async def test_a_principal_ignored_behind_platform_authentication_is_logged_once_and_in_health(deps, caplog):
    behind_auth = Dependencies.build(
        dataclasses.replace(deps.settings, platform_auth=True), credential=ManagedIdentityCredential()
    )
    try:
        principal = {"x-ms-client-principal": "eyJ1c2VySWQiOiAiYSJ9"}
        plain = await health.health(request("GET", "/api/health"), {}, behind_auth)
        assert json.loads(plain.body)["warnings"] == []
        with caplog.at_level(logging.WARNING, logger="chat.web.callers"):
            for _ in range(3):
                listed = await history.conversations(
                    request("GET", "/api/conversations", headers=principal), {}, behind_auth
                )
                assert listed.status_code == 200
        [logged] = [r for r in caplog.records if r.name == "chat.web.callers"]
        assert "CHAT_TRUST_CLIENT_PRINCIPAL" in logged.getMessage() and logged.levelno == logging.WARNING
        checked = await health.health(request("GET", "/api/health"), {}, behind_auth)
        assert checked.status_code == 200
        assert [w["code"] for w in json.loads(checked.body)["warnings"]] == ["client_principal_ignored"]
        # Without platform authentication the header is anyone's text, and nothing is said of it.
        listed = await history.conversations(request("GET", "/api/conversations", headers=principal), {}, deps)
        assert listed.status_code == 200
        assert json.loads((await health.health(request("GET", "/api/health"), {}, deps)).body)["warnings"] == []
    finally:
        await behind_auth.aclose()


async def test_every_route_but_the_anonymous_ones_checks_the_owner_before_anything_else(deps):
    """Trusting the client principal, a request without one is a 401 on every method of every route
    that is not anonymous, before its body or parameters are read; the anonymous ones answer."""
    trusting = Dependencies.build(
        dataclasses.replace(deps.settings, trust_client_principal=True, platform_auth=True),
        credential=ManagedIdentityCredential(),
    )

    async def provider() -> Dependencies:
        return trusting

    try:
        for route in routes.ROUTES:
            path = "/api/" + route.path.replace("{id}", "resp_x" if "responses" in route.path else "x")
            for method in route.methods:
                answer = await handle(
                    route, request(method, path.replace("{item_id}", "i").replace("{model}", "m")), provider
                )
                if route.anonymous:
                    assert answer.status_code != 401, (route.name, method)
                else:
                    assert answer.status_code == 401, (route.name, method)
                    assert json.loads(answer.body)["error"]["code"] == "unauthenticated", (route.name, method)
    finally:
        await trusting.aclose()


async def test_every_route_of_the_openai_door_refuses_a_query_parameter_it_does_not_take(deps):
    """Each method of every /v1 route, with `?foo=1`: 400 unknown_parameter naming it, before its body
    is read or anything is looked up (a route added later must refuse it too)."""

    async def provider() -> Dependencies:
        return deps

    checked = 0
    for route in routes.ROUTES:
        if not route.path.startswith(routes.V1_PREFIX):
            continue
        path = "/api/" + route.path.replace("{id}", "resp_x" if "responses" in route.path else "conv_x")
        for method in route.methods:
            answer = await handle(
                route,
                request(method, path.replace("{item_id}", "msg_x").replace("{model}", "m"), query="foo=1"),
                provider,
            )
            error = json.loads(answer.body)["error"]
            assert (answer.status_code, error["code"], error["param"]) == (400, "unknown_parameter", "foo"), (
                route.name,
                method,
                error,
            )
            checked += 1
    assert checked == 17


def openai_error(error: ChatError) -> dict:
    return {"error": {"message": error.message, "type": "invalid_request_error", "param": None, "code": error.code}}


async def echo(request: Request, params: Params, deps: Dependencies) -> Response:
    return Response(params["id"], status_code=200)


async def test_a_route_answers_errors_in_its_doors_shape(deps):
    described = Operation("echo", "The ID", {"200": Answer("The ID.")}, ("404", "405", "5XX"))
    route = Route("item", "items/{id}", {"GET": Method(echo, described)}, error_body=openai_error)

    async def provider() -> Dependencies:
        return deps

    async def misconfigured() -> Dependencies:
        raise ConfigurationError("AZURE_OPENAI_ENDPOINT is required.")

    found = await handle(route, request("GET", "/api/items/a%2Fb"), provider)
    assert found.status_code == 200 and found.body == b"a%2Fb"
    refused = await handle(route, request("POST", "/api/items/a"), provider)
    assert refused.status_code == 405 and refused.headers["allow"] == "GET"
    error = json.loads(refused.body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("invalid_request_error", "method_not_allowed")
    broken = await handle(route, request("GET", "/api/items/a"), misconfigured)
    assert broken.status_code == 503
    assert json.loads(broken.body)["error"]["code"] == "configuration_error"
    assert set(json.loads(broken.body)["error"]) == {"message", "type", "param", "code"}
    unmatched = await handle(route, request("GET", "/api/items/a/"), provider)
    assert unmatched.status_code == 404 and json.loads(unmatched.body)["error"]["code"] == "not_found"


def test_no_front_door_reaches_the_workers_dependencies():
    """Only the hosts (function_app.py, chat.local) resolve the worker's dependencies; a module of
    chat/web may name the Dependencies type, nothing else of chat.dependencies."""
    for module in sorted(WEB.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                assert "chat.dependencies" not in [alias.name for alias in node.names], module.name
            elif isinstance(node, ast.ImportFrom) and node.module == "chat.dependencies":
                assert [alias.name for alias in node.names] == ["Dependencies"], module.name
            elif isinstance(node, ast.ImportFrom) and node.module == "chat":
                assert "dependencies" not in [alias.name for alias in node.names], module.name
