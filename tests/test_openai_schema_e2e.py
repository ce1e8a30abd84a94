"""Every body and every streamed event of /api/v1 against OpenAI's own published OpenAPI description
(tests/schemas/openai/): the served app, Azurite and the model stand-in, driven over HTTP as the
SDKs drive it, each answer validated with jsonschema against the schema OpenAI gives its path,
method and status; each server-sent event's `data` against the ResponseStreamEvent variant of its
`type`; each error body against OpenAI's ErrorResponse."""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

import pytest

from tests.support.api import Api
from tests.support.door import Door
from tests.support.openai_schema import OpenAIDescription
from tests.support.servers import AppServer, app_env
from tests.support.wire import ASK_TIME, GET_TIME

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

TOOLS = [{**GET_TIME, "strict": True}]


@pytest.fixture(scope="module")
def description() -> OpenAIDescription:
    return OpenAIDescription()


@pytest.fixture
async def door(server, description):
    async with Api(server.url) as api:
        yield Door(api, description)


@pytest.fixture(scope="module")
def instructed_server(standins, azurite):
    """The app as it runs with CHAT_ALLOW_INSTRUCTIONS=true: a caller's instructions are echoed."""
    instance = AppServer(app_env(standins, azurite.connection_string, CHAT_ALLOW_INSTRUCTIONS="true")).start()
    yield instance
    instance.stop()


def segment(value: str) -> str:
    return quote(value, safe="")


def test_the_stored_description_is_openais_2_3(description):
    assert description.version.startswith("2.3.")
    assert description.document["x-source"]["repository"] == "github.com/openai/openai-openapi"
    assert len(description.document["x-source"]["commit"]) == 40
    # The parts /api/v1 answers with are all there.
    for name in ("Response", "ResponseStreamEvent", "ConversationResource", "ConversationItemList", "ErrorResponse"):
        description.validator(name)
    assert description.event_schemas["response.function_call_arguments.done"] == (
        "ResponseFunctionCallArgumentsDoneEvent"
    )


def test_a_departure_from_the_description_is_caught(description):
    """The check can fail: OpenAI's schemas hold what its API requires, as this one requires `name`."""
    done = {
        "type": "response.function_call_arguments.done",
        "sequence_number": 3,
        "item_id": "fc_1",
        "output_index": 0,
        "arguments": "{}",
    }
    with pytest.raises(AssertionError, match="name"):
        description.validate_event(done)
    description.validate_event({**done, "name": "get_time"})
    with pytest.raises(AssertionError, match="tools"):
        description.validate("Response", {"id": "resp_1", "object": "response", "created_at": 1, "output": []})


async def test_responses_plain_and_streamed_answer_as_openai_describes(door, standins):
    model = standins.deployment
    options = {
        "model": model,
        "metadata": {"topic": "schema"},
        "temperature": 0.5,
        "top_p": 0.9,
        "max_output_tokens": 200,
        "truncation": "auto",
        "user": "someone",
        "safety_identifier": "someone-hashed",
        "parallel_tool_calls": False,
    }
    first = await door("POST", "/responses", json_body={**options, "input": "Hello, I am Ada."})
    assert first["status"] == "completed" and first["output"][0]["content"][0]["text"]
    streamed = await door(
        "POST",
        "/responses",
        json_body={**options, "input": "Who am I?", "previous_response_id": first["id"], "stream": True},
    )
    assert [e["type"] for e in streamed][:2] == ["response.created", "response.in_progress"]
    assert streamed[-1]["type"] == "response.completed"
    assert streamed[-1]["response"]["previous_response_id"] == first["id"]

    # A function call, plain and streamed, and its output answered after it.
    asked = await door("POST", "/responses", json_body={"model": model, "input": ASK_TIME, "tools": TOOLS})
    [call] = asked["output"]
    assert call["type"] == "function_call" and call["name"] == "get_time"
    answered = await door(
        "POST",
        "/responses",
        json_body={
            "model": model,
            "tools": TOOLS,
            "tool_choice": "auto",
            "previous_response_id": asked["id"],
            "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "09:30"}],
        },
    )
    assert answered["output"][0]["type"] == "message"
    named = {"type": "function", "name": "get_time"}
    calling = await door(
        "POST",
        "/responses",
        json_body={"model": model, "input": ASK_TIME, "tools": TOOLS, "tool_choice": named, "stream": True},
    )
    done = next(e for e in calling if e["type"] == "response.function_call_arguments.done")
    assert done["name"] == "get_time" and json.loads(done["arguments"]) == {"city": "Oslo"}
    final = calling[-1]["response"]
    await door(
        "POST",
        "/responses",
        json_body={
            "model": model,
            "tools": TOOLS,
            "previous_response_id": final["id"],
            "stream": True,
            "input": [{"type": "function_call_output", "call_id": final["output"][0]["call_id"], "output": "09:30"}],
        },
    )

    # Cut short by max_output_tokens, plain and streamed; failed mid-stream; not stored.
    cut = await door("POST", "/responses", json_body={"model": model, "input": "Long [[finish:length]]"})
    assert cut["status"] == "incomplete" and cut["incomplete_details"] == {"reason": "max_output_tokens"}
    cut_stream = await door(
        "POST", "/responses", json_body={"model": model, "input": "Long [[finish:length]]", "stream": True}
    )
    assert cut_stream[-1]["type"] == "response.incomplete"
    failed = await door("POST", "/responses", json_body={"model": model, "input": "[[cut]] half", "stream": True})
    assert failed[-1]["type"] == "response.failed" and failed[-1]["response"]["error"]["code"]
    await door("POST", "/responses", json_body={"model": model, "input": "Forget me", "store": False})

    assert {
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
        "response.incomplete",
        "response.failed",
    } <= door.event_types


async def test_a_response_is_read_listed_and_deleted_as_openai_describes(door, standins):
    model = standins.deployment
    conversation = await door("POST", "/conversations", json_body={})
    cid = conversation["id"]
    first = await door("POST", "/responses", json_body={"model": model, "input": "Hello", "conversation": cid})
    assert first["conversation"] == {"id": cid}
    second = await door(
        "POST",
        "/responses",
        json_body={
            "model": model,
            "conversation": {"id": cid},
            "stream": True,
            "input": [
                {"type": "message", "role": "user", "content": "Two parts:"},
                {"role": "user", "content": [{"type": "input_text", "text": "and more"}]},
            ],
        },
    )
    rid = second[-1]["response"]["id"]
    read = await door("GET", f"/responses/{rid}")
    assert read["id"] == rid and read["status"] == "completed"
    await door("GET", f"/responses/{rid}", query="include=reasoning.encrypted_content")
    items = await door("GET", f"/responses/{rid}/input_items")
    assert len(items["data"]) == 2 and items["has_more"] is False
    page = await door("GET", f"/responses/{rid}/input_items", query="limit=1&order=asc")
    assert page["has_more"] is True
    await door("GET", f"/responses/{rid}/input_items", query=f"after={page['data'][0]['id']}&order=asc")
    deleted = await door("DELETE", f"/responses/{rid}")
    assert deleted["deleted"] is True
    await door("GET", f"/responses/{rid}", expect=404)
    await door("GET", f"/responses/{first['id']}")
    assert {"Response", "ResponseItemList", "ConversationResource", "ErrorResponse"} <= door.schemas


async def test_conversations_and_their_items_answer_as_openai_describes(door, standins):
    user = {"type": "message", "role": "user", "content": "Remember the number 7."}
    created = await door("POST", "/conversations", json_body={"metadata": {"topic": "schema"}, "items": [user]})
    cid = created["id"]
    assert created["metadata"] == {"topic": "schema"}
    await door("GET", f"/conversations/{segment(cid)}")
    updated = await door("POST", f"/conversations/{segment(cid)}", json_body={"metadata": {"topic": "other"}})
    assert updated["metadata"] == {"topic": "other"}
    added = await door(
        "POST",
        f"/conversations/{segment(cid)}/items",
        json_body={
            "items": [
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Noted."}]},
                {"type": "function_call", "call_id": "call_1", "name": "get_time", "arguments": '{"city": "Oslo"}'},
                {"type": "function_call_output", "call_id": "call_1", "output": "09:30"},
            ]
        },
    )
    assert [item["type"] for item in added["data"]] == ["message", "function_call", "function_call_output"]
    await door("POST", "/responses", json_body={"model": standins.deployment, "input": "And now?", "conversation": cid})
    listed = await door("GET", f"/conversations/{segment(cid)}/items", query="order=asc")
    assert len(listed["data"]) == 6 and listed["first_id"] and listed["last_id"]
    after = await door(
        "GET", f"/conversations/{segment(cid)}/items", query=f"after={listed['data'][0]['id']}&limit=2&order=asc"
    )
    assert after["has_more"] is True
    for item in listed["data"]:
        await door("GET", f"/conversations/{segment(cid)}/items/{item['id']}")
    await door("DELETE", f"/conversations/{segment(cid)}/items/{listed['data'][1]['id']}")
    await door("GET", f"/conversations/{segment(cid)}/items/{listed['data'][1]['id']}", expect=404)
    deleted = await door("DELETE", f"/conversations/{segment(cid)}")
    assert deleted["deleted"] is True
    await door("GET", f"/conversations/{segment(cid)}", expect=404)
    empty = await door("POST", "/conversations", json_body={})
    nothing = await door("GET", f"/conversations/{segment(empty['id'])}/items")
    assert nothing["data"] == [] and nothing["has_more"] is False
    # A conversation the chat routes started, its ID any printable string.
    session = f"teams:19:abc@thread.tacv2;messageid={uuid.uuid4().hex[:6]}"
    assert (await door.api.chat("Hi from a bot", session)).status == 200
    await door("GET", f"/conversations/{segment(session)}")
    await door("GET", f"/conversations/{segment(session)}/items")
    assert {
        "ConversationResource",
        "ConversationItemList",
        "ConversationItem",
        "DeletedConversationResource",
        "ErrorResponse",
    } <= door.schemas


async def test_models_answer_as_openai_describes(door, standins):
    listed = await door("GET", "/models")
    assert standins.deployment in [model["id"] for model in listed["data"]]
    await door("GET", f"/models/{standins.deployment}")
    await door("GET", "/models/gpt-unknown", expect=404)


async def test_errors_answer_as_openai_describes(door, standins):
    model = standins.deployment
    await door("POST", "/responses", json_body={"model": model, "input": "Hi", "colour": "blue"}, expect=400)
    await door("POST", "/responses", body=b'{"model": ', expect=400)
    await door("POST", "/responses", json_body={"model": model}, expect=400)
    await door("POST", "/responses", json_body={"model": model, "input": "Hi", "stream": True, "colour": 1}, expect=400)
    await door("POST", "/responses", json_body={"model": "gpt-unknown", "input": "Hi"}, expect=404)
    await door("POST", "/responses", json_body={"model": model, "input": "Hi", "conversation": "conv_none"}, expect=404)
    await door(
        "POST", "/responses", json_body={"model": model, "input": "Hi", "previous_response_id": "resp_no"}, expect=404
    )
    await door("GET", "/responses/resp_nobody", expect=404)
    await door("GET", "/conversations/conv_nobody/items", expect=404)
    await door("GET", "/conversations/conv_nobody/items", query="limit=101", expect=400)
    await door("PUT", "/responses", json_body={"model": model, "input": "Hi"}, expect=405)
    await door("POST", "/responses", json_body={"model": model, "input": "x" * 100_001}, expect=413)
    await door("POST", "/conversations", body=b"{}", content_type="text/plain", expect=415)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    await door("POST", "/responses", json_body={"model": model, "input": "Once"}, headers=key)
    await door("POST", "/responses", json_body={"model": model, "input": "Twice"}, headers=key, expect=422)
    await door("POST", "/responses", json_body={"model": model, "input": "[[429]] busy"}, expect=429)
    await door("POST", "/responses", json_body={"model": model, "input": "[[429]] busy", "stream": True}, expect=429)
    await door("POST", "/responses", json_body={"model": model, "input": "[[500]] down"}, expect=502)
    await door("POST", "/responses", json_body={"model": model, "input": "[[503]] away"}, expect=503)
    await door("POST", "/responses", json_body={"model": model, "input": "[[filter]] no"}, expect=400)
    assert door.statuses == {200, 400, 404, 405, 413, 415, 422, 429, 502, 503}


async def test_structured_outputs_and_reasoning_answer_as_openai_describes(door, standins):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    shaped = {"type": "json_schema", "name": "place", "schema": schema, "strict": True, "description": "A place"}
    for text, stream in (({"format": shaped, "verbosity": "high"}, False), ({"format": {"type": "json_object"}}, True)):
        body = {"model": standins.deployment, "input": "Lyon", "text": text, "reasoning": {"effort": "high"}}
        answer = await door("POST", "/responses", json_body={**body, "stream": stream})
        response = answer[-1]["response"] if stream else answer
        assert response["reasoning"] == {"effort": "high", "summary": None}
        assert response["text"]["format"]["type"] == text["format"]["type"]
        assert (await door("GET", f"/responses/{response['id']}"))["text"] == response["text"]
    error = await door("POST", "/responses", expect=400, json_body={**body, "reasoning": {"summary": "auto"}})
    assert error["error"]["param"] == "reasoning.summary"


async def test_a_replayed_response_answers_as_openai_describes(door, standins):
    asked = {"model": standins.deployment, "input": "Once only", "metadata": {"try": "1"}}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = await door("POST", "/responses", json_body=asked, headers=key)
    again = await door("POST", "/responses", json_body=asked, headers=key)
    assert again["id"] == first["id"]
    streamed = {**asked, "input": "Streamed once", "stream": True}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    events = await door("POST", "/responses", json_body=streamed, headers=key)
    replayed = await door("POST", "/responses", json_body=streamed, headers=key)
    assert replayed[-1]["response"]["id"] == events[-1]["response"]["id"]


async def test_instructions_answer_as_openai_describes(instructed_server, description, standins):
    async with Api(instructed_server.url) as api:
        door = Door(api, description)
        said = await door(
            "POST",
            "/responses",
            json_body={
                "model": standins.deployment,
                "instructions": "Answer briefly.",
                "input": [
                    {"type": "message", "role": "developer", "content": "Be kind."},
                    {"type": "message", "role": "user", "content": "Hello"},
                ],
            },
        )
        assert said["instructions"]
        events = await door(
            "POST",
            "/responses",
            json_body={"model": standins.deployment, "instructions": "Brief.", "input": "Hi", "stream": True},
        )
        assert events[-1]["response"]["instructions"]
        await door("GET", f"/responses/{said['id']}/input_items")
