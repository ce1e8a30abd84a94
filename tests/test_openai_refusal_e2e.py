"""A model's refusal, end to end: the model stand-in refuses on `[[refuse]]` (Chat Completions'
`refusal`, its `content` null), and the app shows it as OpenAI's Responses API does, to the real
openai SDK and held to OpenAI's published description: a `refusal` content part, with its own
`response.refusal.delta` and `.done` events. It is stored with the turn, read back by every route
that shows items, sent to the model as the assistant's refusal on the next turn, and taken as input
when a client sends it back. The AI Chat Protocol routes show its text as the content, with
`refusal: true` in the answer's context."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote

import openai
import pytest

from standins.completion import REFUSAL
from tests.support.api import Api
from tests.support.openai_schema import OpenAIDescription
from tests.support.openapi_doc import Described, events
from tests.support.prompts import prompt_of

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

REFUSAL_PART = {"type": "refusal", "refusal": REFUSAL}
STREAM = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    *["response.refusal.delta"] * len(REFUSAL.split()[::2]),  # the stand-in streams two words a chunk
    "response.refusal.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


@pytest.fixture(scope="module")
def description() -> OpenAIDescription:
    return OpenAIDescription()


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:8]}"


async def described(api: Api, description: OpenAIDescription, method: str, path: str, query: str = "") -> Any:
    """A JSON answer of /api/v1, checked against the schema OpenAI gives its path, method and status."""
    reply = await api.request(method, "/api/v1" + path + (f"?{query}" if query else ""))
    assert reply.status == 200, reply.body
    schema = description.answer_schema(path, method, 200, "application/json")
    assert schema is not None
    description.validate(schema, reply.body)
    return reply.body


async def test_a_refusal_is_a_refusal_part_stored_and_shown_by_every_read(client, api, model, description):
    conversation = await client.conversations.create()
    asked = unique("Help me with something bad [[refuse]]")
    response = await client.responses.create(model=model, input=asked, conversation=conversation.id)

    assert (response.status, response.output_text) == ("completed", "")
    [refused] = response.output
    assert (refused.type, refused.role, refused.status) == ("message", "assistant", "completed")
    assert (refused.content[0].type, refused.content[0].refusal) == ("refusal", REFUSAL)
    assert response.usage.output_tokens == len(REFUSAL.split())

    shown = await described(api, description, "GET", f"/responses/{response.id}")
    assert shown["output"] == [{"id": refused.id, "type": "message", "status": "completed", "role": "assistant",
                                "content": [REFUSAL_PART]}]  # fmt: skip
    assert shown["status"] == "completed"
    retrieved = await client.responses.retrieve(response.id)
    assert retrieved.output_text == "" and retrieved.output[0].content[0].refusal == REFUSAL

    inputs = await described(api, description, "GET", f"/responses/{response.id}/input_items")
    assert [item["content"][0]["text"] for item in inputs["data"]] == [asked]

    items = await described(api, description, "GET", f"/conversations/{conversation.id}/items", "order=asc")
    assert [(item["role"], item["content"]) for item in items["data"]] == [
        ("user", [{"type": "input_text", "text": asked}]),
        ("assistant", [REFUSAL_PART]),
    ]
    one = await client.conversations.items.retrieve(refused.id, conversation_id=conversation.id)
    assert one.content[0].type == "refusal" and one.content[0].refusal == REFUSAL


async def test_a_streamed_refusal_sends_refusal_events_each_as_openai_describes(client, api, model, description):
    asked = unique("Something bad, streamed [[refuse]]")
    status, headers, raw = await api.send(
        "POST",
        "/api/v1/responses",
        json.dumps({"model": model, "input": asked, "stream": True}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    found = []
    for number, (event, data) in enumerate(events(raw)):
        assert event == data["type"] and data["sequence_number"] == number
        description.validate_event(data)
        found.append(data)
    assert [data["type"] for data in found] == STREAM

    added, part, *deltas = found[2:-4]
    item_id = added["item"]["id"]
    assert added["item"]["content"] == [] and part["part"] == {"type": "refusal", "refusal": ""}
    assert "".join(delta["delta"] for delta in deltas) == REFUSAL
    assert {(d["item_id"], d["output_index"], d["content_index"]) for d in [part, *deltas]} == {(item_id, 0, 0)}
    done, part_done, item_done, completed = found[-4:]
    assert done["refusal"] == REFUSAL and part_done["part"] == REFUSAL_PART
    assert item_done["item"]["content"] == [REFUSAL_PART]
    final = completed["response"]
    assert final["status"] == "completed" and final["output"] == [item_done["item"]]

    stored = await client.responses.retrieve(final["id"])
    assert stored.output[0].id == item_id and stored.output[0].content[0].refusal == REFUSAL

    # The SDK's stream helper puts the same response together, with no output text.
    async with client.responses.stream(model=model, input=unique("Again [[refuse]]")) as stream:
        kinds = [event.type async for event in stream]
        response = await stream.get_final_response()
    assert kinds == STREAM
    assert response.output_text == "" and response.output[0].content[0].refusal == REFUSAL


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_the_next_turn_sends_the_refusal_to_the_model_as_the_assistants(client, model, standins, stream):
    asked = unique("Something bad [[refuse]]")
    if stream:
        async with client.responses.stream(model=model, input=asked) as events_:
            refused = await events_.get_final_response()
    else:
        refused = await client.responses.create(model=model, input=asked)
    follow_up = unique("Then something good")
    answered = await client.responses.create(model=model, input=follow_up, previous_response_id=refused.id)

    assert answered.output_text == f"Echo #2: {follow_up}"
    assert prompt_of(standins, follow_up)[1:] == [
        {"role": "user", "content": asked},
        {"role": "assistant", "refusal": REFUSAL},
        {"role": "user", "content": follow_up},
    ]


async def test_a_refusal_sent_back_as_input_is_taken_stored_and_sent_to_the_model(client, model, standins):
    # As the OpenAI Agents SDK sends back the output it was given, IDs and status included.
    asked = unique("Something bad")
    said = "I can't help with that."
    resent = {
        "id": "msg_" + "1" * 24,
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "refusal", "refusal": said}],
    }
    follow_up = unique("Something good")
    response = await client.responses.create(
        model=model, input=[{"role": "user", "content": asked}, resent, {"role": "user", "content": follow_up}]
    )
    assert response.output_text == f"Echo #2: {follow_up}"
    assert prompt_of(standins, follow_up)[2] == {"role": "assistant", "refusal": said}
    inputs = [item async for item in client.responses.input_items.list(response.id, order="asc")]
    assert [(item.role, item.content[0].type) for item in inputs] == [
        ("user", "input_text"),
        ("assistant", "refusal"),
        ("user", "input_text"),
    ]
    assert inputs[1].content[0].refusal == said and inputs[1].id != resent["id"]

    # Added to a conversation by hand, it is an item like any other.
    conversation = await client.conversations.create(items=[{"role": "user", "content": asked}, resent])
    listed = await client.conversations.items.list(conversation.id, order="asc")
    assert [(item.content[0].type, getattr(item.content[0], "refusal", None)) for item in listed.data] == [
        ("input_text", None),
        ("refusal", said),
    ]


async def test_a_refusal_part_that_does_not_fit_is_a_400_and_nothing_is_stored(client, model, standins):
    conversation = await client.conversations.create()
    mixed = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Well"}, {"type": "refusal", "refusal": "No."}],
    }
    as_user = {"type": "message", "role": "user", "content": [{"type": "refusal", "refusal": "No."}]}
    asked_before = len(standins.requests())
    for bad, param in ((mixed, "input[0].content[0].type"), (as_user, "input[0].content[0].type")):
        with pytest.raises(openai.BadRequestError) as raised:
            await client.responses.create(model=model, input=[bad], conversation=conversation.id)
        assert (raised.value.param, raised.value.code) == (param, "invalid_value")
    with pytest.raises(openai.BadRequestError) as raised:
        await client.conversations.items.create(conversation.id, items=[mixed])
    assert raised.value.param == "items[0].content[0].type"
    assert (await client.conversations.items.list(conversation.id)).data == []
    assert len(standins.requests()) == asked_before


async def test_the_chat_routes_show_a_refusal_as_its_text_marked_in_the_context(api):
    status, headers, raw = await api.send("GET", "/api/openapi.json")
    assert status == 200
    document = Described(json.loads(raw))

    async def chat(path: str, content: str, session: str | None = None) -> list[Any]:
        turn: dict[str, Any] = {"messages": [{"role": "user", "content": content}]}
        if session is not None:
            turn["sessionState"] = session
        body = json.dumps(turn).encode()
        status, headers, raw = await api.send("POST", path, body, {"Content-Type": "application/json"})
        assert status == 200, raw[:500]
        return document.check(path, "POST", 200, headers, raw)  # each answer as the app's own document says

    [answered] = await chat("/api/chat", unique("Something bad [[refuse]]"))
    assert answered["message"] == {"role": "assistant", "content": REFUSAL}
    assert answered["context"]["refusal"] is True and answered["context"]["finish_reason"] == "stop"

    session = answered["sessionState"]
    lines = await chat("/api/chat/stream", unique("Again [[refuse]]"), session)
    assert "".join(line["delta"].get("content", "") for line in lines) == REFUSAL
    assert lines[-1]["context"]["refusal"] is True

    [plain] = await chat("/api/chat", unique("Something good"), session)
    assert "refusal" not in plain["context"] and plain["message"]["content"].startswith("Echo #4: ")
    path = f"/api/conversations/{quote(session, safe='')}/messages"
    status, headers, raw = await api.send("GET", path)
    [listed] = document.check("/api/conversations/{id}/messages", "GET", status, headers, raw)
    messages = listed["messages"]
    assert [(m["role"], m.get("context", {}).get("refusal")) for m in messages] == [
        ("user", None),
        ("assistant", True),
        ("user", None),
        ("assistant", True),
        ("user", None),
        ("assistant", None),
    ]
    assert messages[1]["content"] == messages[3]["content"] == REFUSAL
