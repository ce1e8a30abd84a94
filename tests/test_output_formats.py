"""The answer's format, verbosity and reasoning effort in the two shapes they take: the keyword
arguments of a Chat Completions call, and the `text` and `reasoning` of a response object (read by
the SDK's own Response type)."""

from __future__ import annotations

from dataclasses import replace

from openai.types.responses import Response

from chat.engine.model import ModelRequest, OutputFormat
from chat.upstream.chat_completions import request_options
from chat.web.openai.objects import response_object
from tests.fakes.openai_door import HEAD

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}


def test_the_chat_completions_call_gets_response_format_verbosity_and_reasoning_effort():
    plain = ModelRequest(system_prompt="s", items=())
    assert not {"response_format", "verbosity", "reasoning_effort"} & set(request_options(plain))
    assert request_options(replace(plain, output_format=OutputFormat())) == {"response_format": {"type": "json_object"}}
    named = OutputFormat(name="place", schema=SCHEMA)
    assert request_options(replace(plain, output_format=named)) == {
        "response_format": {"type": "json_schema", "json_schema": {"name": "place", "schema": SCHEMA}}
    }
    full = replace(named, strict=True, description="A place")
    asked = request_options(replace(plain, output_format=full, verbosity="high", reasoning_effort="minimal"))
    assert asked == {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "place", "schema": SCHEMA, "description": "A place", "strict": True},
        },
        "verbosity": "high",
        "reasoning_effort": "minimal",
    }


def test_the_response_shows_text_and_reasoning_as_asked():
    plain = Response.model_validate(response_object(HEAD))
    assert (plain.text.format.type, plain.text.verbosity, plain.reasoning) == ("text", "medium", None)
    options = replace(
        HEAD.options, output_format=OutputFormat(name="place", schema=SCHEMA), verbosity="low", reasoning_effort="high"
    )
    shaped = response_object(replace(HEAD, options=options))
    assert shaped["text"] == {
        "format": {"type": "json_schema", "name": "place", "schema": SCHEMA, "strict": None},
        "verbosity": "low",
    }
    assert shaped["reasoning"] == {"effort": "high", "summary": None}
    read = Response.model_validate(shaped)
    assert (read.text.format.name, read.reasoning.effort) == ("place", "high")
    json_object = replace(HEAD, options=replace(HEAD.options, output_format=OutputFormat()))
    assert response_object(json_object)["text"]["format"] == {"type": "json_object"}
