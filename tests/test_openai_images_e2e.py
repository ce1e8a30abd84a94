"""Images and files in a user's message (and in a function call's output), end to end with the real
openai SDK: an image by data URL and by https URL, a PDF as file_data. They go to the model as Chat
Completions content parts on their turn and again on every later turn whose window holds them (a
tool's, in a user message after the tool messages), are stored with the turn (one
bigger than a table row in Azurite's blob service, read back byte for byte, deleted with its
conversation), and every read shows them as OpenAI does, held to OpenAI's published description.
A malformed or Files-API part is a 400 naming it, and nothing is stored."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import openai
import pytest

from chat.engine.items import MAX_ATTACHMENT_BYTES
from standins.parts import attachments_of
from tests.support.api import Api
from tests.support.azurite import blob_names
from tests.support.door import Door
from tests.support.openai_schema import OpenAIDescription
from tests.support.prompts import prompt_of

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256))).decode()
PDF = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4\n% a tiny document\n%%EOF\n").decode()
URL = "https://example.com/cat.png"


@pytest.fixture(scope="module")
def description() -> OpenAIDescription:
    return OpenAIDescription()


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:8]}"


def sent_for(standins, text: str) -> list[dict[str, Any]]:
    """The user messages the model was sent with the request whose last user message's text was `text`."""
    return [m for m in prompt_of(standins, text) if m["role"] == "user"]


def user(text: str, *parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "input_text", "text": text}, *parts]}]


async def described(api: Api, description: OpenAIDescription, path: str, query: str = "") -> Any:
    reply = await api.request("GET", "/api/v1" + path + (f"?{query}" if query else ""))
    assert reply.status == 200, reply.body
    schema = description.answer_schema(path, "GET", 200, "application/json")
    assert schema is not None
    description.validate(schema, reply.body)
    return reply.body


async def test_images_and_a_pdf_go_upstream_are_stored_and_shown_as_openai_shows_them(
    client, api, model, standins, description
):
    conversation = await client.conversations.create()
    asked = unique("What are these?")
    parts = [
        {"type": "input_image", "image_url": PNG, "detail": "low"},
        {"type": "input_image", "image_url": URL, "detail": "high"},
        {"type": "input_file", "file_data": PDF, "filename": "doc.pdf"},
    ]
    response = await client.responses.create(model=model, input=user(asked, *parts), conversation=conversation.id)

    assert response.status == "completed" and response.output_text.endswith(asked)
    [sent] = sent_for(standins, asked)
    assert attachments_of(sent["content"]) == [
        {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": URL, "detail": "high"}},
        {"type": "file", "file": {"file_data": PDF, "filename": "doc.pdf"}},
    ]
    shown = [{"type": "input_text", "text": asked}, *parts]
    items = await described(api, description, f"/conversations/{conversation.id}/items", "order=asc")
    assert items["data"][0]["content"] == shown
    inputs = await described(api, description, f"/responses/{response.id}/input_items")
    assert inputs["data"][0]["content"] == shown
    listed = [item async for item in client.responses.input_items.list(response.id)]
    assert [part.type for part in listed[0].content] == ["input_text", "input_image", "input_image", "input_file"]
    assert listed[0].content[1].image_url == PNG and listed[0].content[3].file_data == PDF

    # The next turn's window still holds the image: the model is sent it again.
    again = unique("And now?")
    await client.responses.create(model=model, input=again, conversation=conversation.id)
    first, second = sent_for(standins, again)
    assert attachments_of(first["content"]) == attachments_of(sent["content"])
    assert second["content"] == again


async def test_a_chain_sends_the_image_again_with_the_next_response(client, model, standins):
    asked = unique("Look")
    first = await client.responses.create(model=model, input=user(asked, {"type": "input_image", "image_url": URL}))
    again = unique("Still there?")
    await client.responses.create(model=model, input=again, previous_response_id=first.id)
    earlier, _ = sent_for(standins, again)
    assert attachments_of(earlier["content"]) == [{"type": "image_url", "image_url": {"url": URL, "detail": "auto"}}]


async def test_a_part_bigger_than_a_row_is_kept_in_a_blob_read_back_exactly_and_deleted_with_it(
    client, model, azurite, server, standins
):
    before = set(await blob_names(azurite, server))
    conversation = await client.conversations.create()
    # 1.5 MiB decoded: more than a 64 KiB property and more than a 1 MiB row.
    big = "data:image/png;base64," + base64.b64encode(bytes(i % 251 for i in range(1_572_864))).decode()
    asked = unique("A big picture")
    await client.responses.create(
        model=model, input=user(asked, {"type": "input_image", "image_url": big}), conversation=conversation.id
    )
    mine = set(await blob_names(azurite, server)) - before
    assert len(mine) == 1
    [first, _] = [item async for item in client.conversations.items.list(conversation.id, order="asc")]
    assert first.content[1].image_url == big
    one = await client.conversations.items.retrieve(first.id, conversation_id=conversation.id)
    assert one.content[1].image_url == big
    again = unique("Once more")
    await client.responses.create(model=model, input=again, conversation=conversation.id)
    assert len(set(await blob_names(azurite, server)) - before) == 1  # the next turn fits its rows
    earlier, _ = sent_for(standins, again)
    assert attachments_of(earlier["content"]) == [{"type": "image_url", "image_url": {"url": big, "detail": "auto"}}]
    # Deleting the message retires its blob (the turn's answer stays, in a blob of its own or rows).
    await client.conversations.items.delete(first.id, conversation_id=conversation.id)
    assert not (set(await blob_names(azurite, server)) & mine)
    left = set(await blob_names(azurite, server)) - before
    await client.conversations.delete(conversation.id)
    assert not (set(await blob_names(azurite, server)) & left)


@pytest.mark.parametrize(
    ("part", "param"),
    [
        ({"type": "input_image", "detail": "auto", "file_id": "file_1"}, "input[0].content[1].file_id"),
        ({"type": "input_file", "file_url": "https://example.com/a.pdf"}, "input[0].content[1].file_url"),
        ({"type": "input_image", "image_url": "http://example.com/a.png"}, "input[0].content[1].image_url"),
        ({"type": "input_image", "image_url": "data:text/plain;base64,aGk="}, "input[0].content[1].image_url"),
        ({"type": "input_image", "image_url": "data:image/png;base64,not base64!"}, "input[0].content[1].image_url"),
        ({"type": "input_image", "image_url": URL, "detail": "max"}, "input[0].content[1].detail"),
        ({"type": "input_file", "file_data": "JVBERi0=", "filename": "a.pdf"}, "input[0].content[1].file_data"),
        ({"type": "input_file", "file_data": PDF}, "input[0].content[1].filename"),
    ],
)
async def test_a_bad_part_is_a_400_naming_it_and_nothing_is_stored(client, model, part, param):
    conversation = await client.conversations.create()
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model=model, input=user("hi", part), conversation=conversation.id)
    assert (caught.value.status_code, caught.value.param) == (400, param)
    assert f"'{param}'" in caught.value.body["message"]
    assert (await client.conversations.items.list(conversation.id)).data == []


SCREENSHOT = [{"type": "function", "name": "screenshot", "parameters": {"type": "object", "properties": {}}}]


async def test_a_function_call_outputs_image_goes_after_its_tool_message_and_reads_back_as_its_parts(
    client, api, model, standins, description
):
    conversation = await client.conversations.create()
    first = await client.responses.create(
        model=model, input="[[tool:screenshot {}]] look", conversation=conversation.id, tools=SCREENSHOT
    )
    [call] = first.output
    output = [{"type": "input_text", "text": "the page"}, {"type": "input_image", "image_url": PNG, "detail": "low"}]
    second = await client.responses.create(
        model=model,
        conversation=conversation.id,
        tools=SCREENSHOT,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": output}],
    )
    assert second.status == "completed"
    image = {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}}
    sent = standins.requests()[-1]["body"]["messages"]
    assert sent[-2:] == [
        {"role": "tool", "tool_call_id": call.call_id, "content": "the page"},
        {"role": "user", "content": [{"type": "text", "text": f"The output of tool call {call.call_id}:"}, image]},
    ]
    # Read back as OpenAI shows such an output: its parts, held to OpenAI's published description.
    inputs = await described(api, description, f"/responses/{second.id}/input_items")
    assert inputs["data"][0]["output"] == output
    [listed] = [item async for item in client.responses.input_items.list(second.id)]
    assert listed.type == "function_call_output" and listed.output[1].image_url == PNG
    items = await described(api, description, f"/conversations/{conversation.id}/items", "order=asc")
    assert [item["type"] for item in items["data"]] == ["message", "function_call", "function_call_output", "message"]

    # The next turn's window still holds the output: the model is sent the image again.
    again = unique("And the page?")
    await client.responses.create(model=model, input=again, conversation=conversation.id, tools=SCREENSHOT)
    earlier = [m for m in prompt_of(standins, again) if m["role"] == "user" and isinstance(m["content"], list)]
    assert [attachments_of(m["content"]) for m in earlier] == [[image]]


async def test_a_bad_part_in_a_function_call_output_is_a_400_naming_it_and_nothing_is_stored(client, model):
    conversation = await client.conversations.create()
    first = await client.responses.create(
        model=model, input="[[tool:screenshot {}]] look", conversation=conversation.id, tools=SCREENSHOT
    )
    [call] = first.output
    before = (await client.conversations.items.list(conversation.id)).data
    for part, param in (
        ({"type": "input_image", "image_url": "http://example.com/a.png"}, "input[0].output[0].image_url"),
        ({"type": "output_text", "text": "x"}, "input[0].output[0].type"),
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(
                model=model,
                conversation=conversation.id,
                tools=SCREENSHOT,
                input=[{"type": "function_call_output", "call_id": call.call_id, "output": [part]}],
            )
        assert caught.value.param == param
    assert (await client.conversations.items.list(conversation.id)).data == before


async def test_a_retry_with_the_same_key_must_send_the_same_image(client, model, standins):
    conversation = await client.conversations.create()
    key = {"Idempotency-Key": uuid.uuid4().hex}
    asked = unique("Which one?")
    first = await client.responses.create(
        model=model,
        input=user(asked, {"type": "input_image", "image_url": PNG}),
        conversation=conversation.id,
        extra_headers=key,
    )
    again = await client.responses.create(
        model=model,
        input=user(asked, {"type": "input_image", "image_url": PNG}),
        conversation=conversation.id,
        extra_headers=key,
    )
    assert again.id == first.id
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        await client.responses.create(
            model=model,
            input=user(asked, {"type": "input_image", "image_url": URL}),
            conversation=conversation.id,
            extra_headers=key,
        )
    assert caught.value.code == "idempotency_key_reused"
    # The model was asked once: the retry was a replay, the other image refused.
    assert sum(1 for entry in standins.requests() if asked in json.dumps(entry["body"])) == 1
    assert len((await client.conversations.items.list(conversation.id)).data) == 2


async def test_an_image_in_an_assistant_message_is_refused(client, model):
    image = {"type": "input_image", "image_url": URL}
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model=model, input=[{"role": "assistant", "content": [image]}])
    assert caught.value.param == "input[0].content[0].type"


async def test_items_added_by_hand_keep_their_images(client):
    conversation = await client.conversations.create()
    added = await client.conversations.items.create(
        conversation.id, items=user("by hand", {"type": "input_image", "image_url": PNG, "detail": "low"})
    )
    assert added.data[0].content[1].image_url == PNG
    [item] = (await client.conversations.items.list(conversation.id)).data
    assert (item.content[1].type, item.content[1].detail) == ("input_image", "low")


async def test_images_and_files_answer_as_openai_describes(api, description, standins):
    door = Door(api, description)
    image = {"type": "input_image", "image_url": PNG, "detail": "low"}
    linked = {"type": "input_image", "image_url": URL, "detail": "auto"}
    pdf = {"type": "input_file", "file_data": PDF, "filename": "a.pdf"}
    for part, schema in ((image, "InputImageContent"), (linked, "InputImageContent"), (pdf, "InputFileContent")):
        description.validate(schema, part)
    content = [{"type": "input_text", "text": "Look"}, image, linked, pdf]
    conversation = await door("POST", "/conversations", json_body={"items": [{"role": "user", "content": content}]})
    cid = conversation["id"]
    asked = {"model": standins.deployment, "conversation": cid, "stream": True, "input": user("And this", image)}
    streamed = await door("POST", "/responses", json_body=asked)
    rid = streamed[-1]["response"]["id"]
    await door("GET", f"/responses/{rid}")
    inputs = await door("GET", f"/responses/{rid}/input_items")
    assert inputs["data"][0]["content"] == [{"type": "input_text", "text": "And this"}, image]
    items = await door("GET", f"/conversations/{cid}/items", query="order=asc")
    assert items["data"][0]["content"] == content
    one = await door("GET", f"/conversations/{cid}/items/{items['data'][0]['id']}")
    assert one["content"] == content
    added = await door("POST", f"/conversations/{cid}/items", json_body={"items": [{"role": "user", "content": [pdf]}]})
    assert added["data"][0]["content"] == [pdf]
    assert {"Response", "ResponseItemList", "ConversationItemList", "ConversationItem"} <= door.schemas


async def test_an_image_over_the_limit_is_a_400_naming_it_and_nothing_is_stored(client, model):
    conversation = await client.conversations.create()
    over = "data:image/png;base64," + "A" * ((MAX_ATTACHMENT_BYTES // 3 + 1) * 4)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(
            model=model, input=user("hi", {"type": "input_image", "image_url": over}), conversation=conversation.id
        )
    assert caught.value.param == "input[0].content[1].image_url"
    assert f"{MAX_ATTACHMENT_BYTES:,}" in caught.value.body["message"]
    assert (await client.conversations.items.list(conversation.id)).data == []


async def test_the_chat_routes_show_a_message_with_an_image_by_its_text(client, api, model):
    conversation = await client.conversations.create()
    asked = unique("Seen on the other door")
    await client.responses.create(
        model=model, input=user(asked, {"type": "input_image", "image_url": PNG}), conversation=conversation.id
    )
    listed = await api.request("GET", f"/api/conversations/{conversation.id}/messages")
    assert listed.status == 200
    assert [(m["role"], m["content"]) for m in listed.body["messages"]] == [
        ("user", asked),
        ("assistant", f"Echo #0: {asked}"),
    ]
