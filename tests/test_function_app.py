"""function_app.py as the Functions host sees it: indexed routes, then its handlers called in-process.

Core Tools cannot run here; indexing with `app.get_functions()` is what the host's worker does at
start-up, and the handlers are called with the FastAPI `Request` the HTTP streams extension
builds (path parameters filled in by the host, as `RequestSynchronizer.sync_route_params` does).
"""

from __future__ import annotations

import inspect
import json

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage
from azurefunctions.extensions.base import HttpV2FeatureChecker
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response as StarletteResponse

from chat.dependencies import close_dependencies
from tests.support.functions import body_of, handler, request, triggers

EXPECTED = {
    "chat": "chat",
    "chat_stream": "chat/stream",
    "conversations": "conversations",
    "conversation_messages": "conversations/{id}/messages",
    "conversation": "conversations/{id}",
    "health": "health",
    "openapi": "openapi.json",
    "v1_responses": "v1/responses",
    "v1_response": "v1/responses/{id}",
    "v1_response_input_tokens": "v1/responses/input_tokens",
    "v1_response_compact": "v1/responses/compact",
    "v1_response_input_items": "v1/responses/{id}/input_items",
    "v1_response_cancel": "v1/responses/{id}/cancel",
    "v1_conversations": "v1/conversations",
    "v1_conversation": "v1/conversations/{id}",
    "v1_conversation_items": "v1/conversations/{id}/items",
    "v1_conversation_item": "v1/conversations/{id}/items/{item_id}",
    "v1_models": "v1/models",
    "v1_model": "v1/models/{model}",
}


def test_every_route_is_registered_once():
    assert {name: t.route for name, t in triggers().items()} == EXPECTED


def test_background_responses_are_taken_from_their_queue_on_the_identity_connection():
    [(name, trigger)] = triggers("queueTrigger").items()
    assert name == "background_responses"
    assert trigger.queue_name == "chat-responses"  # CHAT_QUEUE_NAME, else the table prefix's
    assert trigger.connection == "CHAT_QUEUE"  # CHAT_QUEUE__queueServiceUri with the app's identity


@pytest.mark.anyio
async def test_the_queue_handler_leaves_a_message_that_names_no_response(in_process):
    message = QueueMessage(id="m1", body=b"resp_unknown", dequeue_count=1)  # as the worker makes it
    assert await handler("background_responses")(message) is None


def test_routes_take_every_method_so_the_handler_answers_405_in_json():
    for trigger in triggers().values():
        assert {m.value for m in trigger.methods} == {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"}


def test_function_key_is_required_except_for_health_and_the_openapi_document():
    levels = {name: t.auth_level for name, t in triggers().items()}
    assert levels.pop("health") == func.AuthLevel.ANONYMOUS
    assert levels.pop("openapi") == func.AuthLevel.ANONYMOUS
    assert set(levels.values()) == {func.AuthLevel.FUNCTION}


def test_functions_use_the_http_streams_extension_types():
    # The worker streams responses only when the extension's Request type was imported and used.
    assert HttpV2FeatureChecker.http_v2_enabled()
    for name in EXPECTED:
        signature = inspect.signature(handler(name))
        assert issubclass(signature.parameters["req"].annotation, StarletteRequest)
        assert issubclass(signature.return_annotation, StarletteResponse)


@pytest.fixture
async def configured(in_process):
    in_process.setenv("CHAT_TABLE_PREFIX", "funcapp")


@pytest.mark.anyio
async def test_handlers_answer_a_request_as_the_host_passes_it(configured):
    turn = json.dumps({"messages": [{"role": "user", "content": "in-process"}], "sessionState": "fa/1"}).encode()
    response = await handler("chat")(request("POST", "/api/chat", turn))
    assert response.status_code == 200
    assert json.loads(await body_of(response))["message"]["content"] == "Echo #0: in-process"

    response = await handler("chat_stream")(request("POST", "/api/chat/stream", turn.replace(b"in-process", b"again")))
    lines = [json.loads(line) for line in (await body_of(response)).splitlines()]
    assert lines[0] == {"delta": {"role": "assistant"}, "sessionState": "fa/1"}
    assert "".join(line.get("delta", {}).get("content", "") for line in lines) == "Echo #2: again"

    # The host forwards an encoded slash to the worker re-encoded (%2F as %252F).
    response = await handler("conversation_messages")(
        request("GET", "/api/conversations/fa%252F1/messages", path_params={"id": "fa%2F1"})
    )
    assert [m["content"] for m in json.loads(await body_of(response))["messages"]] == [
        "in-process",
        "Echo #0: in-process",
        "again",
        "Echo #2: again",
    ]

    response = await handler("conversation")(request("DELETE", "/api/conversations/fa%2F1"))
    assert response.status_code == 204
    response = await handler("conversation_messages")(request("GET", "/api/conversations/fa%2F1/messages"))
    assert response.status_code == 404

    response = await handler("health")(request("GET", "/api/health"))
    assert response.status_code == 200 and json.loads(response.body)["checks"] == {"storage": "ok", "model": "ok"}


@pytest.mark.anyio
async def test_a_missing_setting_is_named_at_the_first_request(monkeypatch):
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    await close_dependencies()
    response = await handler("chat")(request("POST", "/api/chat", b"{}"))
    assert response.status_code == 503
    error = json.loads(response.body)["error"]
    assert error["code"] == "configuration_error" and "AZURE_OPENAI_ENDPOINT" in error["message"]
    health = await handler("health")(request("GET", "/api/health"))
    assert health.status_code == 503 and json.loads(health.body)["status"] == "misconfigured"


@pytest.mark.anyio
async def test_a_trailing_slash_the_host_routes_names_no_conversation(configured):
    """The host's routing ignores a trailing slash, so `DELETE /api/conversations/fa-2/` reaches the
    handler with the `{id}` "fa-2"; the handler reads the path as uvicorn does, and names nothing."""
    for conversation in ("fa-2", "fa-2/"):
        turn = json.dumps({"messages": [{"role": "user", "content": "keep"}], "sessionState": conversation})
        assert (await handler("chat")(request("POST", "/api/chat", turn.encode()))).status_code == 200

    response = await handler("conversation")(request("DELETE", "/api/conversations/fa-2/", path_params={"id": "fa-2"}))
    assert response.status_code == 404 and json.loads(response.body)["error"]["code"] == "not_found"
    response = await handler("chat")(request("POST", "/api/chat/", b"{}"))
    assert response.status_code == 404 and json.loads(response.body)["error"]["code"] == "not_found"

    for path in ("/api/conversations/fa-2/messages", "/api/conversations/fa-2%2F/messages"):
        response = await handler("conversation_messages")(request("GET", path))
        assert response.status_code == 200, path
        assert len(json.loads(await body_of(response))["messages"]) == 2, path


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
@pytest.mark.parametrize("segment", ["input_tokens", "compact"])
async def test_what_the_host_routes_to_a_response_but_is_no_response_id_is_a_404(configured, method, segment):
    """The host routes `POST /api/v1/responses/input_tokens` to `v1/responses/{id}`; the handler
    answers that no such route exists, in OpenAI's shape, rather than 405."""
    path = f"/api/v1/responses/{segment}"
    response = await handler("v1_response")(request(method, path, b"{}", path_params={"id": segment}))
    assert response.status_code == 404
    error = json.loads(response.body)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == "not_found"
    response = await handler("v1_response_input_items")(
        request("GET", path + "/input_items", path_params={"id": segment})
    )
    assert response.status_code == 404 and json.loads(response.body)["error"]["code"] == "not_found"


@pytest.mark.anyio
async def test_a_workers_first_answer_carries_cors_headers_even_an_error(in_process):
    """A 405 or a 404 needs no storage, yet a page on an allowed origin must be able to read it,
    on a worker that has answered nothing else yet as on one that has."""
    origin = "https://app.example.com"
    in_process.setenv("CHAT_ALLOWED_ORIGINS", origin)
    for name, method, path in (("chat", "GET", "/api/chat"), ("conversation", "DELETE", "/api/conversations/x/")):
        await close_dependencies()
        response = await handler(name)(request(method, path, headers={"Origin": origin}))
        assert response.status_code in (404, 405), path
        assert response.headers.get("access-control-allow-origin") == origin, path


@pytest.mark.anyio
async def test_a_malformed_storage_connection_string_is_a_503_that_names_it_not_a_500(monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://example.openai.azure.com")
    monkeypatch.setenv("AZURE_OPENAI_CHAT_DEPLOYMENT", "chat")
    secret = "AccountKey=c2VjcmV0"
    monkeypatch.setenv("CHAT_STORAGE_CONNECTION_STRING", f"not a connection string;{secret}")
    monkeypatch.delenv("CHAT_STORAGE_ENDPOINT", raising=False)
    await close_dependencies()
    try:
        response = await handler("chat")(request("POST", "/api/chat", b"{}"))
        assert response.status_code == 503
        error = json.loads(response.body)["error"]
        assert error["code"] == "configuration_error" and "CHAT_STORAGE_CONNECTION_STRING" in error["message"]
        assert secret not in response.body.decode()
    finally:
        await close_dependencies()
