"""Real answers of the served app, both doors, successes and errors, each validated with jsonschema
against what its own /api/openapi.json says that path, method, status and content type answer."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import parse_qsl, quote

import pytest

from tests.support.api import Api
from tests.support.openapi_doc import Described
from tests.support.wire import ASK_TIME, GET_TIME

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

TOOLS = [GET_TIME]


def calls(call_id: str) -> list[dict[str, Any]]:
    """A function call and its output, as a client adds them to a conversation."""
    return [
        {"type": "function_call", "call_id": call_id, "name": "get_time", "arguments": '{"city": "Oslo"}'},
        {"type": "function_call_output", "call_id": call_id, "output": "09:30"},
    ]


class Caller:
    """Sends a request, checks that its answer is what the document says, and keeps the statuses seen."""

    def __init__(self, api: Api, described: Described) -> None:
        self.api = api
        self.described = described
        self.seen: set[int] = set()

    async def __call__(
        self,
        method: str,
        template: str,
        *,
        expect: int,
        json_body: Any = None,
        body: bytes | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        query: str = "",
        **params: str,
    ) -> list[Any]:
        if query:
            # What is sent is what the document offers: a parameter it does not name would be refused.
            sent = {name for name, _ in parse_qsl(query)}
            assert sent <= self.described.query_parameters(template, method), (template, sent)
        path = template.format(**{name: quote(value, safe="") for name, value in params.items()})
        if json_body is not None:
            body = json.dumps(json_body).encode()
        sent_headers = {**({"Content-Type": content_type} if body is not None else {}), **(headers or {})}
        status, answered, raw = await self.api.send(method, path + (f"?{query}" if query else ""), body, sent_headers)
        assert status == expect, (method, path, status, raw[:500])
        self.seen.add(status)
        return self.described.check(template, method, status, answered, raw)


@pytest.fixture
async def described(api) -> Described:
    status, headers, body = await api.send("GET", "/api/openapi.json")
    assert status == 200 and headers["content-type"] == "application/json"
    return Described(json.loads(body))


@pytest.fixture
def call(api, described) -> Caller:
    return Caller(api, described)


async def test_the_chat_routes_answer_as_their_document_says(call):
    session = f"openapi-{uuid.uuid4().hex[:8]}"
    key = uuid.uuid4().hex
    turn = {"messages": [{"role": "user", "content": "Hello, I am Ada"}], "sessionState": session}
    [answer] = await call("POST", "/api/chat", json_body=turn, headers={"Idempotency-Key": key}, expect=200)
    assert answer["sessionState"] == session and answer["context"]["usage"]["prompt_tokens"] > 0
    [again] = await call("POST", "/api/chat", json_body=turn, headers={"Idempotency-Key": key}, expect=200)
    assert again == answer
    other = {**turn, "messages": [{"role": "user", "content": "Something else"}]}
    await call("POST", "/api/chat", json_body=other, headers={"Idempotency-Key": key}, expect=422)

    lines = await call(
        "POST", "/api/chat/stream", json_body={**turn, "messages": [{"role": "user", "content": "Who?"}]}, expect=200
    )
    assert lines[0] == {"delta": {"role": "assistant"}, "sessionState": session}
    assert lines[-1]["delta"] == {} and lines[-1]["context"]["finish_reason"] == "stop"
    cut = await call(
        "POST",
        "/api/chat/stream",
        json_body={**turn, "messages": [{"role": "user", "content": "Go [[cut]]"}]},
        expect=200,
    )
    assert set(cut[-1]) == {"error"} and cut[-2]["delta"]["content"]

    # A function call and its output, added on the other door, as the chat routes show them.
    await call("POST", "/api/v1/conversations/{id}/items", id=session, json_body={"items": calls("call_1")}, expect=200)
    [page] = await call("GET", "/api/conversations/{id}/messages", id=session, query="limit=50", expect=200)
    assert [m.get("type") for m in page["messages"]][-2:] == ["function_call", "function_call_output"]
    assert "context" in page["messages"][1] and "context" not in page["messages"][0]
    [listed] = await call("GET", "/api/conversations", query="limit=200", expect=200)
    assert session in [c["id"] for c in listed["conversations"]]
    await call("GET", "/api/health", expect=200)
    await call("HEAD", "/api/health", expect=200)
    [document] = await call("GET", "/api/openapi.json", expect=200)
    assert document["openapi"] == "3.1.0"

    await call("POST", "/api/chat", body=b'{"messages": [', expect=400)
    await call("GET", "/api/conversations", query="limit=0", expect=400)
    await call("GET", "/api/conversations/{id}/messages", id=f"never-{uuid.uuid4().hex}", expect=404)
    await call("PUT", "/api/chat", json_body=turn, expect=405)
    await call("POST", "/api/openapi.json", expect=405)
    too_long = {"messages": [{"role": "user", "content": "x" * 100_001}], "sessionState": session}
    await call("POST", "/api/chat", json_body=too_long, expect=413)
    await call("POST", "/api/chat", json_body=turn, content_type="text/plain", expect=415)
    limited = {"messages": [{"role": "user", "content": "Busy [[429]]"}], "sessionState": session}
    await call("POST", "/api/chat", json_body=limited, expect=429)
    failing = {"messages": [{"role": "user", "content": "Down [[500]]"}], "sessionState": session}
    await call("POST", "/api/chat", json_body=failing, expect=502)
    await call("DELETE", "/api/conversations/{id}", id=session, expect=204)
    assert call.seen == {200, 204, 400, 404, 405, 413, 415, 422, 429, 502}


async def test_the_openai_door_answers_as_its_document_says(call, standins):
    model = standins.deployment
    first = {"type": "message", "role": "user", "content": "Remember the number 7."}
    created = {"metadata": {"topic": "openapi"}, "items": [first]}
    [conversation] = await call("POST", "/api/v1/conversations", json_body=created, expect=200)
    cid = conversation["id"]
    await call("GET", "/api/v1/conversations/{id}", id=cid, expect=200)
    await call("POST", "/api/v1/conversations/{id}", id=cid, json_body={"metadata": {"topic": "docs"}}, expect=200)
    include = "include=message.input_image.image_url"
    items = {"items": calls("call_2")}
    [added] = await call("POST", "/api/v1/conversations/{id}/items", id=cid, json_body=items, query=include, expect=200)
    call_id = added["data"][0]["id"]
    page = f"after={call_id}&limit=5&order=asc&{include}"
    [listed] = await call("GET", "/api/v1/conversations/{id}/items", id=cid, query=page, expect=200)
    assert [item["type"] for item in listed["data"]] == ["function_call_output"]
    await call("GET", "/api/v1/conversations/{id}/items/{item_id}", id=cid, item_id=call_id, query=include, expect=200)
    await call("DELETE", "/api/v1/conversations/{id}/items/{item_id}", id=cid, item_id=call_id, expect=200)

    key = uuid.uuid4().hex
    asked = {"model": model, "input": "Hello", "conversation": cid, "metadata": {"n": "1"}}
    [response] = await call("POST", "/api/v1/responses", json_body=asked, headers={"Idempotency-Key": key}, expect=200)
    assert response["status"] == "completed" and response["conversation"] == {"id": cid}
    await call("POST", "/api/v1/responses", json_body=asked, headers={"Idempotency-Key": key}, expect=200)
    await call(
        "POST", "/api/v1/responses", json_body={**asked, "input": "Other"}, headers={"Idempotency-Key": key}, expect=422
    )
    events = await call(
        "POST", "/api/v1/responses", json_body={**asked, "input": "Stream it", "stream": True}, expect=200
    )
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    [tool] = await call(
        "POST", "/api/v1/responses", json_body={"model": model, "input": ASK_TIME, "tools": TOOLS}, expect=200
    )
    assert [item["type"] for item in tool["output"]] == ["function_call"]
    streamed = {"model": model, "input": ASK_TIME, "tools": TOOLS, "stream": True}
    events = await call("POST", "/api/v1/responses", json_body=streamed, expect=200)
    assert "response.function_call_arguments.done" in [event["type"] for event in events]
    [cut_short] = await call(
        "POST", "/api/v1/responses", json_body={"model": model, "input": "Long [[finish:length]]"}, expect=200
    )
    assert cut_short["status"] == "incomplete"
    failed = await call(
        "POST", "/api/v1/responses", json_body={"model": model, "input": "[[cut]] half", "stream": True}, expect=200
    )
    assert failed[-1]["type"] == "response.failed"

    rid = response["id"]
    retrieve = "include=reasoning.encrypted_content&stream=false&include_obfuscation=false"
    await call("GET", "/api/v1/responses/{id}", id=rid, query=retrieve, expect=200)
    await call("GET", "/api/v1/responses/{id}/input_items", id=rid, query=f"limit=1&order=desc&{include}", expect=200)
    await call("DELETE", "/api/v1/responses/{id}", id=rid, expect=200)
    await call("GET", "/api/v1/models", expect=200)
    await call("GET", "/api/v1/models/{model}", model=model, expect=200)

    await call("POST", "/api/v1/responses", json_body={"model": model, "input": "Hi", "colour": "blue"}, expect=400)
    await call("GET", "/api/v1/conversations/{id}/items", id=cid, query="limit=101", expect=400)
    await call("GET", "/api/v1/conversations/{id}", id="conv_nobody", expect=404)
    await call("GET", "/api/v1/responses/{id}", id=rid, expect=404)
    await call("GET", "/api/v1/models/{model}", model="gpt-unknown", expect=404)
    await call("PUT", "/api/v1/responses", json_body=asked, expect=405)
    await call("POST", "/api/v1/responses", json_body={"model": model, "input": "x" * 100_001}, expect=413)
    await call("POST", "/api/v1/conversations", json_body={}, content_type="text/plain", expect=415)
    await call("POST", "/api/v1/responses", json_body={"model": model, "input": "[[429]] busy"}, expect=429)
    await call("POST", "/api/v1/responses", json_body={"model": model, "input": "[[500]] down"}, expect=502)
    await call("DELETE", "/api/v1/conversations/{id}", id=cid, expect=200)
    assert call.seen == {200, 400, 404, 405, 413, 415, 422, 429, 502}


async def test_without_a_signed_in_user_both_doors_answer_401_as_documented(trusted_server, described):
    async with Api(trusted_server.url) as api:
        call = Caller(api, described)
        await call("GET", "/api/conversations", expect=401)
        await call("POST", "/api/chat", json_body={"messages": [{"role": "user", "content": "Hi"}]}, expect=401)
        await call("GET", "/api/v1/conversations/{id}", id="conv_1", expect=401)
        await call("GET", "/api/health", expect=200)  # anonymous, as documented
    assert call.seen == {200, 401}
