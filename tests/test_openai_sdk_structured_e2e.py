"""Structured outputs, verbosity and reasoning effort through the official openai Python package:
`responses.parse` with a Pydantic model and `text` and `reasoning` by hand, streamed and not, what
the model is sent, what the response shows on create, in its events and when read again, and the
400s of bad values, which store nothing."""

from __future__ import annotations

import json
import uuid

import jsonschema
import openai
import pytest
from pydantic import BaseModel

from standins.formats import REASONING_TOKENS

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


class Person(BaseModel):
    name: str
    age: int


class Trip(BaseModel):
    city: str
    days: int
    travellers: list[Person]
    by_train: bool


def sent_bodies(standins, text: str) -> list[dict]:
    return [e["body"] for e in standins.requests() if e["body"]["messages"][-1]["content"] == text]


async def test_parse_with_a_pydantic_model_is_answered_in_its_schema_and_shown_as_asked(client, model, standins):
    text = f"plan a trip {uuid.uuid4().hex[:8]}"
    response = await client.responses.parse(model=model, input=text, text_format=Trip)
    trip = response.output_parsed
    assert isinstance(trip, Trip) and trip.city == f"Echo #0: {text}" and trip.travellers[0].age == 1
    [sent] = sent_bodies(standins, text)
    shape = sent["response_format"]
    assert (shape["type"], shape["json_schema"]["name"], shape["json_schema"]["strict"]) == (
        "json_schema",
        "Trip",
        True,
    )
    jsonschema.validate(json.loads(response.output_text), shape["json_schema"]["schema"])
    assert "reasoning_effort" not in sent and "verbosity" not in sent
    assert response.text.format.type == "json_schema" and response.text.format.name == "Trip"
    assert response.text.format.schema_ == shape["json_schema"]["schema"] and response.text.format.strict is True
    assert response.text.verbosity == "medium" and response.reasoning is None
    again = await client.responses.retrieve(response.id)
    assert again.text.model_dump() == response.text.model_dump()
    assert again.output_text == response.output_text


async def test_a_streamed_parse_gives_the_parsed_document_and_its_events_show_the_format(client, model, standins):
    text = f"stream a trip {uuid.uuid4().hex[:8]}"
    async with client.responses.stream(model=model, input=text, text_format=Trip) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    assert final.output_parsed == Trip.model_validate_json(final.output_text)
    created = next(event for event in events if event.type == "response.created")
    assert created.response.text.format.type == "json_schema" and created.response.text.format.name == "Trip"
    [sent] = sent_bodies(standins, text)
    assert sent["stream"] is True and sent["response_format"]["json_schema"]["name"] == "Trip"
    again = await client.responses.retrieve(final.id)
    assert again.text.format.name == "Trip" and Trip.model_validate_json(again.output_text) == final.output_parsed


@pytest.mark.parametrize("stream", [False, True])
async def test_json_object_verbosity_and_reasoning_effort_reach_the_model_and_are_shown(
    client, model, standins, stream
):
    text = f"as json {uuid.uuid4().hex[:8]}"
    asked = {
        "text": {"format": {"type": "json_object"}, "verbosity": "low"},
        "reasoning": {"effort": "low", "summary": None},
    }
    if stream:
        events = [event async for event in await client.responses.create(model=model, input=text, stream=True, **asked)]
        assert events[0].response.reasoning.effort == "low" and events[0].response.text.verbosity == "low"
        response = events[-1].response
    else:
        response = await client.responses.create(model=model, input=text, **asked)
    assert json.loads(response.output_text) == {"echo": f"Echo #0: {text}"}
    [sent] = sent_bodies(standins, text)
    assert (sent["response_format"], sent["verbosity"], sent["reasoning_effort"]) == (
        {"type": "json_object"},
        "low",
        "low",
    )
    assert (response.text.format.type, response.text.verbosity) == ("json_object", "low")
    assert (response.reasoning.effort, response.reasoning.summary) == ("low", None)
    assert response.usage.output_tokens_details.reasoning_tokens == REASONING_TOKENS["low"]
    again = await client.responses.retrieve(response.id)
    assert again.usage.output_tokens_details.reasoning_tokens == REASONING_TOKENS["low"]
    assert (again.reasoning.effort, again.text.format.type, again.text.verbosity) == ("low", "json_object", "low")


@pytest.mark.parametrize(
    ("asked", "param"),
    [
        ({"text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"text": {"format": {"type": "json_schema", "name": "no spaces", "schema": {}}}}, "text.format.name"),
        ({"text": {"format": {"type": "json_schema", "name": "x", "schema": "object"}}}, "text.format.schema"),
        ({"text": {"verbosity": "verbose"}}, "text.verbosity"),
        ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        ({"reasoning": {"effort": "low", "summary": "auto"}}, "reasoning.summary"),
        ({"reasoning": {"generate_summary": "concise"}}, "reasoning.generate_summary"),
    ],
)
async def test_a_bad_text_or_reasoning_is_a_400_naming_it_and_stores_nothing(client, model, standins, asked, param):
    conversation = await client.conversations.create()
    before = len(standins.requests())
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(
                model=model, input="hello", conversation=conversation.id, stream=stream, **asked
            )
        assert (caught.value.status_code, caught.value.param) == (400, param)
        assert f"'{param}'" in caught.value.body["message"]
    assert len(standins.requests()) == before
    assert (await client.conversations.items.list(conversation.id)).data == []


async def test_a_format_the_model_refuses_is_a_400_with_its_reason_and_stores_nothing(client, model, standins):
    conversation = await client.conversations.create()
    loose = {"type": "json_schema", "name": "loose", "schema": {"type": "object"}, "strict": True}
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(
                model=model, input="loose", conversation=conversation.id, stream=stream, text={"format": loose}
            )
        assert caught.value.code == "model_rejected_request"
        assert "additionalProperties" in caught.value.body["message"]
    assert (await client.conversations.items.list(conversation.id)).data == []
