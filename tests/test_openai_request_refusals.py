"""Request parsing on the OpenAI door: what is refused, and the bounds of what is accepted."""

from __future__ import annotations

import json

import pytest

from chat.engine import errors
from chat.web.errors import status_of
from chat.web.openai.requests import (
    ListQuery,
    RetrieveQuery,
    parse_conversation_create,
    parse_conversation_update,
    parse_include_query,
    parse_items_create,
    parse_list_query,
    parse_response_request,
    parse_response_retrieve_query,
)
from tests.fakes.openai_door import MODEL, WEATHER, body, refusal

# ---------------------------------------------------------------------------------------------------
# Request parsing: refusals and bounds


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("background_options", {"completion_window": "2h"}),
        ("prompt", {"id": "pmpt_1"}),
        ("prompt_cache_retention", "24h"),
        ("prompt_cache_options", {"ttl": "30m"}),
        ("service_tier", "flex"),
        ("top_logprobs", 3),
        ("max_tool_calls", 2),
        ("stream_options", {"include_usage": True}),
        ("stream_options", {"include_obfuscation": "yes"}),
        ("stream_options", "on"),
        ("moderation", {"model": "omni-moderation-latest"}),
        ("image", {"context_compression": "enabled"}),
        ("access_programs", {"cyber": "standard"}),
    ],
)
def test_each_field_not_honoured_is_refused_by_name(field, value):
    error = refusal(lambda: parse_response_request(body(model=MODEL, **{field: value})))
    assert (error.param, error.code) == (field, "unsupported_parameter")
    assert f"'{field}'" in error.message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reasoning", None),
        ("text", {"format": {"type": "text"}}),
        ("text", {}),
        ("background", False),
        ("service_tier", "auto"),
        ("service_tier", "default"),
        ("top_logprobs", 0),
        ("max_tool_calls", None),
        ("stream_options", {"include_obfuscation": False}),
        ("stream_options", {"include_obfuscation": True}),
        ("stream_options", {}),
        ("stream_options", None),
        ("reasoning", {}),
        ("reasoning", {"effort": None, "summary": None}),
        ("reasoning", {"effort": None, "summary": None, "generate_summary": None}),
        ("reasoning", {"effort": "high"}),
        ("text", {"format": {"type": "json_object"}}),
        ("text", {"verbosity": "low"}),
        ("context_management", []),
        ("prompt", None),
        ("prompt_cache_key", None),
    ],
)
def test_a_field_not_honoured_is_accepted_when_it_asks_for_nothing(field, value):
    parsed = parse_response_request(body(model=MODEL, input="hello", **{field: value}))
    assert [item.text for item in parsed.inputs] == ["hello"]


@pytest.mark.parametrize(
    ("field", "value", "param", "code"),
    [
        ("reasoning", {"summary": "auto"}, "reasoning.summary", "unsupported_parameter"),
        (
            "reasoning",
            {"effort": None, "generate_summary": "auto"},
            "reasoning.generate_summary",
            "unsupported_parameter",
        ),
        ("reasoning", "high", "reasoning", "invalid_type"),
        ("reasoning", {"effort": "huge"}, "reasoning.effort", "invalid_value"),
        ("reasoning", {"effort": "low", "mode": "deep"}, "reasoning.mode", "unknown_parameter"),
        ("text", {"verbosity": "terse"}, "text.verbosity", "invalid_value"),
        ("text", {"format": {"type": "xml"}}, "text.format.type", "unsupported_type"),
        ("text", {"format": {"type": 5}}, "text.format.type", "invalid_type"),
        ("text", {"format": {"type": None}}, "text.format.type", "missing_required_parameter"),
        ("text", {"format": {"type": {"name": "xml"}}}, "text.format.type", "invalid_type"),
        ("text", {"format": {"type": "json_schema", "schema": {}}}, "text.format.name", "missing_required_parameter"),
        ("text", {"format": {"type": "json_schema", "name": "a b", "schema": {}}}, "text.format.name", None),
        ("text", {"format": {"type": "json_schema", "name": "n" * 65, "schema": {}}}, "text.format.name", None),
        ("text", {"format": {"type": "json_schema", "name": "x"}}, "text.format.schema", "missing_required_parameter"),
        ("text", {"format": {"type": "json_schema", "name": "x", "schema": []}}, "text.format.schema", "invalid_type"),
        (
            "text",
            {"format": {"type": "json_schema", "name": "x", "schema": {}, "strict": "yes"}},
            "text.format.strict",
            "invalid_type",
        ),
        ("text", {"format": {"type": "json_object", "name": "x"}}, "text.format.name", "unknown_parameter"),
        ("text", {"format": "json"}, "text.format", None),
    ],
)
def test_a_bad_text_or_reasoning_is_a_400_naming_the_nested_parameter(field, value, param, code):
    error = refusal(lambda: parse_response_request(body(model=MODEL, input="hello", **{field: value})))
    assert error.param == param
    if code is not None:
        assert error.code == code
    assert f"'{param}'" in error.message


def test_text_and_reasoning_are_kept_for_the_model():
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    text = {"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True, "description": "A"}}
    options = parse_response_request(
        body(model=MODEL, input="hello", text={**text, "verbosity": "high"}, reasoning={"effort": "minimal"})
    ).options
    assert (options.output_format.name, options.output_format.schema, options.output_format.strict) == (
        "place",
        schema,
        True,
    )
    assert (options.output_format.description, options.verbosity, options.reasoning_effort) == ("A", "high", "minimal")
    plain = parse_response_request(body(model=MODEL, input="hello", text={"format": {"type": "text"}})).options
    assert (plain.output_format, plain.verbosity, plain.reasoning_effort) == (None, None, None)
    json_object = parse_response_request(body(model=MODEL, input="hi", text={"format": {"type": "json_object"}}))
    assert json_object.options.output_format is not None
    assert json_object.options.output_format.schema is None


def test_an_input_item_whose_type_is_null_is_a_message_as_one_left_out():
    # A property sent as null is one not sent: an item with a role and no type is a message.
    [sent] = parse_response_request(body(model=MODEL, input=[{"type": None, "role": "user", "content": "x"}])).inputs
    [left_out] = parse_response_request(body(model=MODEL, input=[{"role": "user", "content": "x"}])).inputs
    assert (
        (sent.kind, sent.role, sent.text) == (left_out.kind, left_out.role, left_out.text) == ("message", "user", "x")
    )


def test_a_prompt_cache_key_is_kept_for_the_model():
    parsed = parse_response_request(body(model=MODEL, input="hello", prompt_cache_key="tenant-7/chat"))
    assert parsed.options.prompt_cache_key == "tenant-7/chat"
    assert parse_response_request(body(model=MODEL, input="hello")).options.prompt_cache_key is None


@pytest.mark.parametrize(
    ("value", "code"), [(7, "invalid_type"), ("k" * 257, "string_above_max_length"), ("", "empty_string")]
)
def test_a_prompt_cache_key_that_is_no_short_string_is_a_400(value, code):
    error = refusal(lambda: parse_response_request(body(model=MODEL, input="hello", prompt_cache_key=value)))
    assert (error.param, error.code) == ("prompt_cache_key", code)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"frobnicate": 1}, "frobnicate"),
        ({"input": [{"role": "user", "content": "hi", "name": "bob"}]}, "input[0].name"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_text", "text": "hi", "x": 1}]}]},
            "input[0].content[0].x",
        ),
        ({"tools": [{**WEATHER, "examples": []}]}, "tools[0].examples"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "name": "weather", "why": 1}}, "tool_choice.why"),
        ({"conversation": {"id": "conv_1", "owner": "me"}}, "conversation.owner"),
        (
            {"input": [{"type": "function_call_output", "call_id": "c", "output": "x", "name": "weather"}]},
            "input[0].name",
        ),
        ({"tools": [{**WEATHER, "defer_loading": True}]}, "tools[0].defer_loading"),
        ({"\ud800key": 1}, "\\ud800key"),
        ({"k" * 10_000: 1}, "k" * 64 + "..."),
    ],
)
def test_unknown_and_refused_fields_are_named_at_any_depth(fields, param):
    error = refusal(lambda: parse_response_request(body(model=MODEL, **fields)))
    assert error.param == param
    assert error.code in ("unknown_parameter", "unsupported_parameter")


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "object_above_max_properties"),
        ({"metadata": {"k" * 65: "v"}}, "metadata." + "k" * 64 + "...", "string_above_max_length"),
        ({"metadata": {"k": "v" * 513}}, "metadata.k", "string_above_max_length"),
        ({"metadata": {"k": 1}}, "metadata.k", "invalid_type"),
        ({"metadata": ["k"]}, "metadata", "invalid_type"),
        ({"input": [{"role": "user", "content": "x"}] * 1001}, "input", "array_above_max_length"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_text", "text": "x"}] * 101}]},
            "input[0].content",
            "array_above_max_length",
        ),
        ({"tools": [{**WEATHER, "name": f"t{i}"} for i in range(129)]}, "tools", "array_above_max_length"),
        ({"include": ["reasoning.encrypted_content"] * 17}, "include", "array_above_max_length"),
        ({"max_output_tokens": 15}, "max_output_tokens", "invalid_value"),
        ({"max_output_tokens": 2**31}, "max_output_tokens", "invalid_value"),
        ({"temperature": 2.5}, "temperature", "invalid_value"),
        ({"top_p": -0.1}, "top_p", "invalid_value"),
        ({"temperature": "0.5"}, "temperature", "invalid_type"),
        ({"stream": "true"}, "stream", "invalid_type"),
        ({"max_output_tokens": 64.0}, "max_output_tokens", "invalid_type"),
        ({"store": 1}, "store", "invalid_type"),
        ({"truncation": "middle"}, "truncation", "invalid_value"),
        ({"safety_identifier": "s" * 129}, "safety_identifier", "string_above_max_length"),
        ({"model": ""}, "model", "empty_string"),
        ({"model": "m" * 257}, "model", "string_above_max_length"),
        ({"previous_response_id": "@results.ress"}, "previous_response_id", "invalid_value"),
        ({"conversation": ""}, "conversation", "empty_string"),
        ({"conversation": "c" * 1025}, "conversation", "string_above_max_length"),
        (
            {"input": [{"type": "function_call", "call_id": "c", "name": "bad name", "arguments": "{}"}]},
            "input[0].name",
            "invalid_value",
        ),
        (
            {"input": [{"type": "function_call_output", "output": "x"}]},
            "input[0].call_id",
            "missing_required_parameter",
        ),
        ({"input": [{"role": "user"}]}, "input[0].content", "missing_required_parameter"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role", "invalid_value"),
        (
            {"input": [{"role": "user", "content": [{"type": "output_text", "text": "x"}]}]},
            "input[0].content[0].type",
            "invalid_value",
        ),
        ({"input": ["hello"]}, "input[0]", "invalid_type"),
        ({"input": 5}, "input", "invalid_type"),
        ({"input": "\ud800"}, "input", "invalid_text"),
        (
            {"tools": [{"type": "function", "name": "deep", "parameters": json.loads('{"a":' * 40 + "1" + "}" * 40)}]},
            "tools[0].parameters",
            "schema_too_deep",
        ),
        ({"tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
        (
            {"tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": []}},
            "tool_choice.type",
            "unsupported_type",
        ),
    ],
)
def test_bad_values_and_sizes_are_a_400_naming_the_field(fields, param, code):
    error = refusal(lambda: parse_response_request(body(**{"model": MODEL, **fields})))
    assert (error.param, error.code) == (param, code)
    assert "Traceback" not in error.message and len(error.message) < 400


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"input": "hello"}, "model", "missing_required_parameter"),
        (
            {"model": MODEL, "conversation": "c", "previous_response_id": "resp_1"},
            "conversation",
            "mutually_exclusive_parameters",
        ),
        (
            {"model": MODEL, "tools": [WEATHER], "tool_choice": {"type": "function", "name": "other"}},
            "tool_choice.name",
            "invalid_value",
        ),
        ({"model": MODEL, "tool_choice": "required"}, "tool_choice", "invalid_value"),
        ({"model": MODEL, "tools": [WEATHER, WEATHER]}, "tools[1].name", "invalid_value"),
    ],
)
def test_fields_that_contradict_each_other_are_a_400(fields, param, code):
    error = refusal(lambda: parse_response_request(json.dumps(fields).encode()))
    assert (error.param, error.code) == (param, code)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b'{"model": "m", "temperature": NaN}', "invalid_json"),
        (b'{"model": "m", "temperature": Infinity}', "invalid_json"),
        (b'{"model": "m", "temperature": -Infinity}', "invalid_json"),
        (b'{"model": "m", "input": "a", "input": "b"}', "invalid_json"),
        (b'{"model": "m", "metadata": {"k": "1", "k": "2"}}', "invalid_json"),
        (b'{"model": "m", "input": [{"role": "user", "content": "a", "role": "user"}]}', "invalid_json"),
        (b'{"model": "m", "max_output_tokens": ' + b"9" * 5000 + b"}", "invalid_json"),
        (b"[" * 100_000, "invalid_json"),
        (b'{"model": "\xff"}', "invalid_encoding"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_400(raw, code):
    error = refusal(lambda: parse_response_request(raw))
    assert (error.code, error.param) == (code, None)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "m", "input": [' + b"[]," * 100_000 + b"[]]}",
        b'{"model": "m", "metadata": {"a": [' + b"0," * 100_000 + b"0]}}",
    ],
    ids=["arrays", "numbers"],
)
def test_a_body_holding_too_many_json_values_is_refused_before_they_are_built(raw):
    # The door's bound is the chat routes' (chat/web/json_body.py): a 300 KB body of empty lists
    # would otherwise become 100,000 lists before a validator saw the first.
    with pytest.raises(errors.PayloadTooLarge) as raised:
        parse_response_request(raw)
    assert raised.value.code == "json_too_complex" and status_of(raised.value) == 413


def test_a_bad_body_stops_at_its_first_error():
    # Counted before their entries are validated, which alone would make an error of each one.
    huge = {f"key{i}": i for i in range(50_000)}
    error = refusal(lambda: parse_response_request(body(model=MODEL, metadata=huge)))
    assert error.code == "object_above_max_properties" and "50000" in error.message
    # (Within the body's bound on JSON values: 15,000 items are 75,000 of them.)
    many = [{"role": "user", "content": "x"}] * 15_000
    error = refusal(lambda: parse_response_request(body(model=MODEL, input=many)))
    assert error.code == "array_above_max_length" and "15000" in error.message
    error = refusal(lambda: parse_response_request(body(model=MODEL, input=[{"role": "nobody"}] * 1_000)))
    assert error.param == "input[0].role"
    unknown = {f"field{i}": 1 for i in range(50_000)}
    error = refusal(lambda: parse_response_request(body(model=MODEL, **unknown)))
    assert error.param == "field0"


def test_conversation_bodies():
    made = parse_conversation_create(
        body(items=[{"role": "user", "content": "hello"}, {"role": "assistant", "content": "Hi"}], metadata={"a": "b"})
    )
    assert [(item.role, item.text) for item in made.items] == [("user", "hello"), ("assistant", "Hi")]
    assert made.metadata == {"a": "b"}
    assert parse_conversation_create(b"") == parse_conversation_create(b"{}")
    assert parse_conversation_create(b"{}").items == ()
    error = refusal(lambda: parse_conversation_create(body(items=[{"role": "user", "content": "x"}] * 21)))
    assert (error.param, error.code) == ("items", "array_above_max_length")
    assert [
        item.role for item in parse_conversation_create(body(items=[{"role": "system", "content": "x"}])).items
    ] == ["system"]
    refusing = lambda: parse_conversation_create(  # noqa: E731
        body(items=[{"role": "system", "content": "x"}]), refuse_instructions=True
    )
    error = refusal(refusing)
    assert (error.param, error.code) == ("items[0].role", "system_message_not_allowed")
    error = refusal(lambda: parse_conversation_create(body(title="mine")))
    assert (error.param, error.code) == ("title", "unknown_parameter")

    assert parse_conversation_update(body(metadata={"topic": "x"})).metadata == {"topic": "x"}
    assert parse_conversation_update(body(metadata=None)).metadata == {}
    error = refusal(lambda: parse_conversation_update(b"{}"))
    assert (error.param, error.code) == ("metadata", "missing_required_parameter")

    added = parse_items_create(body(items=[{"type": "function_call_output", "call_id": "c", "output": "ok"}]))
    assert [item.kind for item in added.items] == ["function_call_output"] and added.include == ()
    error = refusal(lambda: parse_items_create(body(items=[])))
    assert (error.param, error.code) == ("items", "empty_array")
    error = refusal(lambda: parse_items_create(b"{}"))
    assert (error.param, error.code) == ("items", "missing_required_parameter")


def test_list_queries():
    assert parse_list_query([]) == ListQuery(None, 20, "desc", ())
    query = parse_list_query(
        [
            ("after", "msg_1"),
            ("limit", "100"),
            ("order", "asc"),
            ("include[]", "reasoning.encrypted_content"),
            ("code", "k"),
        ]
    )
    assert query == ListQuery("msg_1", 100, "asc", ("reasoning.encrypted_content",))
    assert parse_include_query([("include", "file_search_call.results")]) == ("file_search_call.results",)
    assert parse_response_retrieve_query([("stream", "false")]) == RetrieveQuery(())
    assert parse_response_retrieve_query([("stream", "true"), ("starting_after", "7")]) == RetrieveQuery((), True, 7)
    for bad, param in [
        ([("limit", "0")], "limit"),
        ([("limit", "101")], "limit"),
        ([("limit", "ten")], "limit"),
        ([("limit", "１")], "limit"),
        ([("limit", "10.0")], "limit"),
        ([("limit", "5"), ("limit", "6")], "limit"),
        ([("order", "sideways")], "order"),
        ([("after", "msg 1")], "after"),
        ([("after", "x" * 257)], "after"),
        ([("include", "message.output_text.logprobs")], "include"),
        ([("sort", "asc")], "sort"),
    ]:
        assert refusal(lambda bad=bad: parse_list_query(bad)).param == param
    assert refusal(lambda: parse_response_retrieve_query([("stream", "yes")])).param == "stream"
    assert refusal(lambda: parse_response_retrieve_query([("starting_after", "3")])).param == "starting_after"
    assert refusal(lambda: parse_response_retrieve_query([("stream", "true"), ("starting_after", "-1")])).param == (
        "starting_after"
    )
