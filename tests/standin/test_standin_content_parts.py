"""The model stand-in takes content-part arrays as Azure OpenAI does (text, image_url and file in
user messages), refuses malformed ones with its 400 naming the part, and journals what it was sent."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from standins import StandIns
from standins.parts import attachments_of
from tests.support.standin_clients import azure_openai

PNG = "data:image/png;base64,iVBORw0KGgo="
PDF = "data:application/pdf;base64,JVBERi0xLjQK"


def _send(standins: StandIns, messages: list[dict[str, Any]]) -> Any:
    async def scenario() -> Any:
        async with azure_openai(standins) as client:
            return await client.chat.completions.create(model=standins.deployment, messages=messages)  # type: ignore[arg-type]

    return asyncio.run(scenario())


def test_text_image_and_file_parts_are_answered_and_journaled(standins: StandIns) -> None:
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "file", "file": {"file_data": PDF, "filename": "a.pdf"}},
    ]

    completion = _send(standins, [{"role": "user", "content": content}])

    assert completion.choices[0].message.content == "Echo #0: What is in these?"
    [request] = standins.requests()
    assert attachments_of(request["body"]["messages"][0]["content"]) == content[1:]


@pytest.mark.parametrize(
    ("part", "param"),
    [
        ({"type": "input_image", "image_url": PNG}, "messages[0].content[1].type"),
        ({"type": "image_url", "image_url": {"detail": "low"}}, "messages[0].content[1].image_url.url"),
        ({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}, "messages[0].content[1].image_url.url"),
        ({"type": "image_url", "image_url": {"url": PNG, "detail": "max"}}, "messages[0].content[1].image_url.detail"),
        ({"type": "file", "file": {"filename": "a.pdf"}}, "messages[0].content[1].file.file_data"),
        ({"type": "file", "file": {"file_data": "JVBERi0=", "filename": "a"}}, "messages[0].content[1].file.file_data"),
    ],
)
def test_a_malformed_part_is_refused_naming_it(standins: StandIns, part: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _send(standins, [{"role": "user", "content": [{"type": "text", "text": "Hi"}, part]}])

    assert caught.value.status_code == 400
    assert caught.value.body["param"] == param  # type: ignore[index]


def test_an_image_outside_a_user_message_is_refused(standins: StandIns) -> None:
    image = {"type": "image_url", "image_url": {"url": PNG}}
    messages = [{"role": "system", "content": [image]}, {"role": "user", "content": "Hi"}]

    with pytest.raises(openai.BadRequestError) as caught:
        _send(standins, messages)

    assert caught.value.body["param"] == "messages[0].content[0].type"  # type: ignore[index]
