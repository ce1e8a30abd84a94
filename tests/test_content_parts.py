"""A message's (and a function call output's) images and files without a server: the row codec
stores them and reads them back exactly (and says when they need a blob), the token estimate counts
them as OpenAI does, and the model adapter sends them as Chat Completions content parts."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from chat.engine.errors import PayloadTooLarge
from chat.engine.history import Conversation, NewTurn
from chat.engine.items import (
    MAX_ATTACHMENT_BYTES,
    FilePart,
    FunctionCallOutput,
    ImagePart,
    Item,
    Message,
    Turn,
    attachment_bytes,
    attachments,
    copied,
    function_call,
    function_call_output,
    message,
)
from chat.engine.placing import Placement
from chat.engine.tokens import HIGH_DETAIL_IMAGE_TOKENS, attachment_tokens, estimate_tokens
from chat.engine.window import turn_cost
from chat.storage import codec
from chat.upstream.chat_completions import TOOL_PARTS_ONLY, chat_messages
from tests.fakes.store import FakeStore

PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n" * 10).decode()
PDF = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4 tiny").decode()


def with_parts(*parts: Any) -> Message:
    return message("user", "", parts=parts)


def stored_and_read(item: Item) -> tuple[list[dict[str, Any]], Any]:
    conversation = Conversation("owner", "c1")
    rows = codec.turn_entities(conversation, 1, NewTurn((item,), (), None, None, created_at="2026-01-01"))
    items = [row for row in rows if row["RowKey"].startswith("t")]

    async def entities() -> AsyncIterator[Any]:
        for row in items:
            yield row

    async def read() -> list[Any]:
        return [read async for read in codec.read_items(entities(), 0, None)]

    [read] = asyncio.run(read())
    return items, read.view.item


def test_a_message_with_parts_is_read_back_as_it_was_stored():
    item = with_parts("Look: ", ImagePart(PNG, "low"), " and ", FilePart(PDF, "doc.pdf"), ImagePart("https://x.test/a"))
    rows, read = stored_and_read(item)
    assert read == item
    assert read.text == "Look:  and "
    assert rows[0][codec.PARTS_PROPERTY] is True
    assert not codec.spans_rows(rows[0])


def test_a_plain_message_is_stored_as_text_without_the_parts_mark():
    item = message("user", "hello")
    rows, read = stored_and_read(item)
    assert read == item and read.parts == ()
    assert codec.PARTS_PROPERTY not in rows[0] and rows[0]["c00"] == "hello"


def test_parts_of_more_than_a_row_are_split_across_rows_read_back_exactly_and_need_a_blob():
    big = "data:image/png;base64," + base64.b64encode(bytes(i % 256 for i in range(1_200_000))).decode()
    item = with_parts("big", ImagePart(big, "high"))
    rows, read = stored_and_read(item)
    assert len(rows) > 1 and codec.spans_rows(rows[0])
    assert read == item and read.parts[1] == ImagePart(big, "high")


def test_a_copy_keeps_the_parts_under_a_new_id():
    item = with_parts("a", ImagePart(PNG))
    copy = copied(item)
    assert isinstance(copy, Message) and copy.parts == item.parts and copy.id != item.id


def test_images_count_85_at_low_detail_and_the_most_tiles_can_cost_otherwise():
    low, high, auto = (with_parts(ImagePart(PNG, detail)) for detail in ("low", "high", "auto"))
    assert attachment_tokens([low]) == 85
    assert attachment_tokens([high]) == attachment_tokens([auto]) == HIGH_DETAIL_IMAGE_TOKENS == 85 + 8 * 170


def test_a_file_counts_by_its_decoded_size_and_the_turn_cost_includes_it():
    data = "data:application/pdf;base64," + base64.b64encode(b"x" * 3000).decode()
    assert attachment_bytes(data) == 3000
    item = with_parts("read this", FilePart(data, "a.pdf"))
    assert attachment_tokens([item]) == 1000
    turn = Turn(1, (item,), (), "2026-01-01")
    assert turn_cost(turn, estimate_tokens) == estimate_tokens("read this") + 1000


def test_the_model_is_sent_the_parts_in_order_as_chat_completions_content_parts():
    item = with_parts("What is it?", ImagePart(PNG, "low"), FilePart(PDF, "doc.pdf"))
    [_, user] = chat_messages("system", [item])
    assert user == {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is it?"},
            {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
            {"type": "file", "file": {"file_data": PDF, "filename": "doc.pdf"}},
        ],
    }


def test_a_function_call_output_with_parts_is_read_back_as_it_was_stored_and_copied_with_them():
    image, pdf = ImagePart(PNG, "high"), FilePart(PDF, "p.pdf")
    item = function_call_output("call_1", "ignored", parts=("The page: ", image, pdf))
    assert item.output == "The page: " and attachments(item) == (image, pdf)
    rows, read = stored_and_read(item)
    assert read == item and rows[0][codec.PARTS_PROPERTY] is True
    copy = copied(item)
    assert isinstance(copy, FunctionCallOutput) and copy.parts == item.parts and copy.id != item.id
    plain = function_call_output("call_1", "12 C")
    rows, read = stored_and_read(plain)
    assert read == plain and read.parts == () and codec.PARTS_PROPERTY not in rows[0]


def test_a_function_call_outputs_images_count_in_the_window():
    item = function_call_output("call_1", "", parts=(ImagePart(PNG, "low"), "seen"))
    assert attachment_tokens([item]) == 85
    turn = Turn(1, (item,), (), "2026-01-01")
    assert turn_cost(turn, estimate_tokens) == estimate_tokens("seen") + 85


def test_a_function_call_outputs_images_follow_the_tool_messages_in_a_user_message_naming_the_call():
    first, second = function_call("call_a", "look", "{}"), function_call("call_b", "weather", "{}")
    looked = function_call_output("call_a", "", parts=("Here: ", ImagePart(PNG, "low")))
    only_image = function_call_output("call_a", "", parts=(ImagePart("https://x.test/a.png"),))
    weather = function_call_output("call_b", "12 C")
    [_, assistant, *rest] = chat_messages("system", [first, second, looked, weather])
    assert [call["id"] for call in assistant["tool_calls"]] == ["call_a", "call_b"]
    # Chat Completions takes the tool messages right after their assistant message; the images after them.
    assert rest == [
        {"role": "tool", "tool_call_id": "call_a", "content": "Here: "},
        {"role": "tool", "tool_call_id": "call_b", "content": "12 C"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "The output of tool call call_a:"},
                {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
            ],
        },
    ]
    [_, _, tool, user] = chat_messages("system", [first, only_image])
    assert tool == {"role": "tool", "tool_call_id": "call_a", "content": TOOL_PARTS_ONLY}
    assert user["content"][1] == {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "auto"}}


def test_the_engine_refuses_an_image_over_the_limit_whatever_door_sent_it():
    store = FakeStore()
    placement = Placement(store, store, max_message_chars=100)
    just = "data:image/png;base64," + "A" * (MAX_ATTACHMENT_BYTES // 3 * 4)
    placement.check_inputs((with_parts("ok", ImagePart(just)),))
    over = "data:image/png;base64," + "A" * ((MAX_ATTACHMENT_BYTES // 3 + 1) * 4)
    with pytest.raises(PayloadTooLarge) as caught:
        placement.check_inputs((with_parts("too big", FilePart(over, "a.pdf")),))
    assert caught.value.code == "input_too_large"
    with pytest.raises(PayloadTooLarge) as caught:
        placement.check_inputs((function_call_output("call_1", "", parts=(ImagePart(over),)),))
    assert caught.value.code == "input_too_large"


@pytest.mark.parametrize(
    ("url", "served"),
    [
        ("https://example.com/cat.png", True),
        ("HTTPS://example.com/cat.png", True),  # a scheme is case-insensitive
        ("https://", False),  # no host
        ("https://example.com/a cat.png", False),
        ("https://exa\x00mple.com/cat.png", False),
        ("http://example.com/cat.png", False),
    ],
)
def test_an_image_url_is_an_https_url_with_a_host(url, served):
    import json

    from chat.web.openai.errors import InvalidParameter
    from chat.web.openai.requests import parse_response_request

    content = [{"type": "input_text", "text": "what is it?"}, {"type": "input_image", "image_url": url}]
    body = json.dumps({"model": "chat", "input": [{"role": "user", "content": content}]}).encode()
    if served:
        [item] = parse_response_request(body).inputs
        assert [part.url for part in attachments(item)] == [url]
    else:
        with pytest.raises(InvalidParameter) as raised:
            parse_response_request(body)
        assert raised.value.param == "input[0].content[1].image_url"
