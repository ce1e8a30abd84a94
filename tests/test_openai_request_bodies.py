"""Request bodies as the openai SDK sends them, parsed by the OpenAI door's wire layer."""

from __future__ import annotations

import openai
import pytest
from openai.types.responses import (
    EasyInputMessageParam,
    ResponseFunctionToolCall,
    ResponseInputItemParam,
    ResponseOutputMessage,
)

from chat.engine.items import ImagePart
from chat.engine.model import FunctionTool, NamedFunction
from chat.web.openai.requests import ResponseOptions, parse_response_request
from tests.fakes.openai_door import MODEL, WEATHER, body, refusal, sdk_client, serve

wire = pytest.fixture(scope="module", name="wire")(serve)
client = pytest.fixture(name="client")(sdk_client)


# ---------------------------------------------------------------------------------------------------
# Request bodies as the SDK sends them


def test_a_string_input_is_one_user_message(client, wire):
    client.responses.create(model=MODEL, input="hello there")
    parsed = wire.parsed[-1]
    assert [(item.kind, item.role, item.text) for item in parsed.inputs] == [("message", "user", "hello there")]
    assert (parsed.model, parsed.stream, parsed.conversation_id, parsed.previous_response_id) == (
        MODEL,
        False,
        None,
        None,
    )
    assert parsed.options == ResponseOptions()


def test_an_empty_string_input_is_no_input_as_an_empty_list_is(client, wire):
    # Not an empty user message: the door refuses a response with no input (the e2e tests say so).
    client.responses.create(model=MODEL, input="")
    assert wire.parsed[-1].inputs == ()
    client.responses.create(model=MODEL, input=[])
    assert wire.parsed[-1].inputs == ()


def test_every_message_shape_the_sdk_sends_becomes_a_message_item(client, wire):
    easy: EasyInputMessageParam = {"role": "user", "content": "hello, short form"}
    typed: ResponseInputItemParam = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "Two "}, {"type": "input_text", "text": "parts"}],
    }
    echoed: ResponseInputItemParam = {
        "id": "msg_from_before",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "An earlier answer", "annotations": []}],
    }
    easy_assistant: EasyInputMessageParam = {"role": "assistant", "content": "Said before", "type": "message"}
    client.responses.create(
        model=MODEL, input=[easy, typed, echoed, easy_assistant, {"role": "user", "content": "hello"}]
    )
    inputs = wire.parsed[-1].inputs
    assert [(item.role, item.text) for item in inputs] == [
        ("user", "hello, short form"),
        ("user", "Two parts"),
        ("assistant", "An earlier answer"),
        ("assistant", "Said before"),
        ("user", "hello"),
    ]
    # IDs are the server's: an echoed one is not kept, and every item has its own.
    assert all(item.id.startswith("msg_") and item.id != "msg_from_before" for item in inputs)
    assert len({item.id for item in inputs}) == len(inputs)


def test_an_assistant_refusal_sent_back_becomes_a_refusal_message(client, wire):
    refused: ResponseInputItemParam = {
        "id": "msg_refused_before",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "refusal", "refusal": "I can't "}, {"type": "refusal", "refusal": "do that."}],
    }
    client.responses.create(
        model=MODEL, input=[{"role": "user", "content": "Do it"}, refused, {"role": "user", "content": "answer this"}]
    )
    inputs = wire.parsed[-1].inputs
    assert [(item.role, item.text, item.refusal) for item in inputs] == [
        ("user", "Do it", False),
        ("assistant", "I can't do that.", True),
        ("user", "answer this", False),
    ]
    assert inputs[1].id != "msg_refused_before"


@pytest.mark.parametrize(
    ("content", "role", "param", "code"),
    [
        ([{"type": "output_text", "text": "Well"}, {"type": "refusal", "refusal": "No."}], "assistant",
         "input[0].content[0].type", "invalid_value"),
        ([{"type": "refusal", "refusal": "No."}, {"type": "output_text", "text": "Well"}], "assistant",
         "input[0].content[1].type", "invalid_value"),
        ([{"type": "refusal", "refusal": "No."}], "user", "input[0].content[0].type", "invalid_value"),
        ([{"type": "refusal", "refusal": 7}], "assistant", "input[0].content[0].refusal", "invalid_type"),
        ([{"type": "refusal"}], "assistant", "input[0].content[0].refusal", "missing_required_parameter"),
        ([{"type": "refusal", "refusal": "No.", "why": 1}], "assistant", "input[0].content[0].why",
         "unknown_parameter"),
    ],
)  # fmt: skip
def test_a_refusal_part_that_does_not_fit_is_a_400_naming_it(content, role, param, code):
    error = refusal(lambda: parse_response_request(body(model=MODEL, input=[{"role": role, "content": content}])))
    assert (error.param, error.code) == (param, code)


def test_function_calls_and_outputs_in_input_become_items(client, wire):
    items: list[ResponseInputItemParam] = [
        {"role": "user", "content": "Weather in Oslo and Bergen?"},
        {"type": "function_call", "call_id": "call_a", "name": "weather", "arguments": '{"city": "Oslo"}'},
        {"type": "function_call", "call_id": "call_b", "name": "weather", "arguments": '{"city": "Bergen"}'},
        {"type": "function_call_output", "call_id": "call_a", "output": "-3 C"},
        {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "4 C"}]},
    ]
    client.responses.create(model=MODEL, input=items, tools=[WEATHER])
    inputs = wire.parsed[-1].inputs
    assert [(item.kind, getattr(item, "call_id", None)) for item in inputs] == [
        ("message", None),
        ("function_call", "call_a"),
        ("function_call", "call_b"),
        ("function_call_output", "call_a"),
        ("function_call_output", "call_b"),
    ]
    assert (inputs[2].name, inputs[2].arguments) == ("weather", '{"city": "Bergen"}')
    assert (inputs[3].output, inputs[4].output) == ("-3 C", "4 C")


def test_an_outputs_image_may_have_a_null_detail_a_messages_may_not(client, wire):
    png = "data:image/png;base64,iVBORw0KGgo="
    image = {"type": "input_image", "image_url": png, "detail": None}
    client.responses.create(
        model=MODEL,
        input=[
            {"type": "function_call", "call_id": "call_a", "name": "weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_a", "output": [image]},
        ],
        tools=[WEATHER],
    )
    [_, output] = wire.parsed[-1].inputs
    assert output.parts == (ImagePart(png, "auto"),)
    error = refusal(lambda: parse_response_request(body(model=MODEL, input=[{"role": "user", "content": [image]}])))
    assert error.param == "input[0].content[0].detail"


def test_the_sdk_s_stateless_tool_loop_sends_back_what_it_was_given(client, wire):
    question = {"role": "user", "content": "weather in Oslo?"}
    first = client.responses.create(model=MODEL, input=[question], tools=[WEATHER])
    said, call = first.output
    assert isinstance(said, ResponseOutputMessage) and isinstance(call, ResponseFunctionToolCall)
    # The SDK's own output objects go back as input, with their ids, statuses and empty annotations.
    second = client.responses.create(
        model=MODEL,
        input=[question, *first.output, {"type": "function_call_output", "call_id": call.call_id, "output": "-3 C"}],
        tools=[WEATHER],
    )
    inputs = wire.parsed[-1].inputs
    assert [item.kind for item in inputs] == ["message", "message", "function_call", "function_call_output"]
    assert (inputs[1].role, inputs[1].text) == ("assistant", "Let me look.")
    assert (inputs[2].call_id, inputs[2].name, inputs[2].arguments) == ("call_weather", "weather", '{"city": "Oslo"}')
    assert inputs[3].call_id == "call_weather"
    assert second.output_text == "Hello, world"


def test_options_reach_the_request_and_come_back_in_the_response(client, wire):
    response = client.responses.create(
        model=MODEL,
        input="hello",
        conversation={"id": "conv_1"},
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "weather"},
        parallel_tool_calls=False,
        max_output_tokens=64,
        temperature=0.2,
        top_p=0.9,
        truncation="disabled",
        metadata={"topic": "weather"},
        store=False,
        safety_identifier="caller-hash",
        user="user-1",
        include=["reasoning.encrypted_content"],
    )
    parsed = wire.parsed[-1]
    assert parsed.conversation_id == "conv_1" and parsed.include == ("reasoning.encrypted_content",)
    assert parsed.options == ResponseOptions(
        tools=(FunctionTool("weather", WEATHER["description"], WEATHER["parameters"], None),),
        tool_choice=NamedFunction("weather"),
        parallel_tool_calls=False,
        max_output_tokens=64,
        temperature=0.2,
        top_p=0.9,
        truncation="disabled",
        metadata={"topic": "weather"},
        store=False,
        safety_identifier="caller-hash",
        user="user-1",
    )
    assert response.conversation.id == "conv_1"
    assert (response.tool_choice.type, response.tool_choice.name) == ("function", "weather")
    assert (response.tools[0].name, response.tools[0].parameters) == ("weather", WEATHER["parameters"])
    assert (response.parallel_tool_calls, response.max_output_tokens, response.temperature, response.top_p) == (
        False,
        64,
        0.2,
        0.9,
    )
    assert (response.truncation, response.metadata, response.store) == ("disabled", {"topic": "weather"}, False)
    assert (response.safety_identifier, response.user) == ("caller-hash", "user-1")


def test_a_conversation_id_as_a_string_and_a_previous_response_id(client, wire):
    client.responses.create(model=MODEL, input="hello", conversation="19:abc@thread.tacv2;messageid=1")
    assert wire.parsed[-1].conversation_id == "19:abc@thread.tacv2;messageid=1"
    response = client.responses.create(model=MODEL, input="hello", previous_response_id="resp_1")
    assert (wire.parsed[-1].previous_response_id, response.previous_response_id) == ("resp_1", "resp_1")


def test_instructions_and_system_messages_are_the_callers_kept_in_order(client, wire):
    response = client.responses.create(
        model=MODEL,
        instructions="Be brief.",
        input=[
            {"role": "system", "content": "Answer in French."},
            {"role": "developer", "content": "Sign with your name."},
            {"role": "user", "content": "hello"},
        ],
    )
    parsed = wire.parsed[-1]
    assert parsed.options.instructions == response.instructions == "Be brief."
    assert [(item.role, item.text) for item in parsed.inputs] == [
        ("system", "Answer in French."),
        ("developer", "Sign with your name."),
        ("user", "hello"),
    ]


def test_a_deployment_that_refuses_instructions_says_so_by_name(client, wire):
    before = len(wire.parsed)
    with wire.client(default_headers={"x-refuse": "1"}) as refusing:
        with pytest.raises(openai.BadRequestError) as caught:
            refusing.responses.create(model=MODEL, input="hello", instructions="Be brief.")
        assert (caught.value.param, caught.value.code) == ("instructions", "instructions_not_allowed")
        with pytest.raises(openai.BadRequestError) as caught:
            refusing.responses.create(model=MODEL, input=[{"role": "developer", "content": "Be brief."}])
        assert (caught.value.param, caught.value.code) == ("input[0].role", "system_message_not_allowed")
    assert len(wire.parsed) == before


@pytest.mark.parametrize(
    ("options", "param", "code"),
    [
        ({"reasoning": {"effort": "low", "summary": "auto"}}, "reasoning.summary", "unsupported_parameter"),
        ({"text": {"format": {"type": "xml"}}}, "text.format.type", "unsupported_type"),
        ({"background": True, "store": False}, "background", "invalid_value"),
        ({"top_logprobs": 3}, "top_logprobs", "unsupported_parameter"),
        ({"extra_body": {"frobnicate": 1}}, "frobnicate", "unknown_parameter"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type", "unsupported_type"),
        ({"tools": [{"type": 3}]}, "tools[0].type", "invalid_type"),
        ({"input": [{"type": ["message"]}]}, "input[0].type", "invalid_type"),
        ({"tools": [{"type": None, "name": "f"}]}, "tools[0].type", "missing_required_parameter"),
        (
            {"input": [{"role": "user", "content": [{"type": None, "text": "x"}]}]},
            "input[0].content[0].type",
            "missing_required_parameter",
        ),
        ({"include": ["message.output_text.logprobs"]}, "include[0]", "invalid_value"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "detail": "auto", "file_id": "file_1"}]}]},
            "input[0].content[0].file_id",
            "unsupported_parameter",
        ),
        ({"input": [{"type": "reasoning", "id": "rs_1", "summary": []}]}, "input[0].type", "unsupported_type"),
    ],
)
def test_what_this_server_cannot_honour_is_a_400_naming_it(client, wire, options, param, code):
    before = len(wire.parsed)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(**{"model": MODEL, "input": "hello", **options})
    error = caught.value
    assert (error.status_code, error.type, error.param, error.code) == (400, "invalid_request_error", param, code)
    assert f"'{param}'" in error.body["message"]
    assert len(wire.parsed) == before
