"""Parsing a chat body costs about what its size does: a bad body is refused before it is built.

The figures behind these bounds are in docs/limits.md (benchmarks/bad_bodies.py measures them);
these tests assert the structure that keeps them: what is refused, with which code, and that a
refused body is never turned into objects, nor into errors nobody reads.
"""

from __future__ import annotations

import json
import tracemalloc

import pytest
from pydantic import ValidationError

from chat.engine.errors import ChatError, InvalidRequest, PayloadTooLarge
from chat.web.chat_protocol import MAX_MESSAGES, ChatRequestBody, parse_chat_request
from chat.web.errors import status_of
from chat.web.json_body import MAX_JSON_VALUES

TURN = '{"messages": [{"role": "user", "content": "hi"}], "context": '


def parse(body: bytes):
    return parse_chat_request(body, max_message_chars=100_000)


def refusal(body: bytes) -> ChatError:
    with pytest.raises(ChatError) as raised:
        parse(body)
    return raised.value


def values(document) -> int:
    """What the bound counts in a parsed document: strings (keys included), arrays and objects."""
    if isinstance(document, dict):
        return 1 + sum(1 + values(v) for v in document.values())
    if isinstance(document, list):
        return 1 + sum(values(v) for v in document)
    return 1 if isinstance(document, str) else 0


def test_validation_stops_at_the_first_bad_message():
    with pytest.raises(ValidationError) as raised:
        ChatRequestBody.model_validate({"messages": [{}] * 1_000})
    assert raised.value.error_count() <= 2  # the first message's role and content, never 2,000
    assert {e["loc"][:2] for e in raised.value.errors()} == {("messages", 0)}


def test_the_first_bad_message_is_the_one_named():
    body = json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "user"}, {"content": 1}]}).encode()
    error = refusal(body)
    assert isinstance(error, InvalidRequest) and error.message == "messages.1.content: Field required"


def test_a_body_of_many_empty_messages_is_refused_before_it_is_built():
    body = b'{"messages": [' + b"{}, " * 249_999 + b"{}]}"  # 1 MB
    tracemalloc.start()
    try:
        error = refusal(body)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(error, PayloadTooLarge) and error.code == "json_too_complex"
    # The decoded text and little else: 250,000 dicts, or their validation errors, would be far more.
    assert peak < 2 * len(body)


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b"[" + b"[]," * MAX_JSON_VALUES + b"[]]", "arrays"),
        (b"[" * (MAX_JSON_VALUES + 1), "arrays"),
        ((TURN + "{" + '"k": null, ' * MAX_JSON_VALUES + '"k": null}}').encode(), "strings"),
        ((TURN + '{"s": [' + '"", ' * MAX_JSON_VALUES + '""]}}').encode(), "strings"),
        ((TURN + '{"o": [' + "{}, " * MAX_JSON_VALUES + "{}]}}").encode(), "objects"),
        ((TURN + '{"n": [' + "0, " * MAX_JSON_VALUES + "0]}}").encode(), "numbers"),
        ((TURN + '{"n": [' + "1.5, " * MAX_JSON_VALUES + "1.5]}}").encode(), "numbers"),
    ],
    ids=["empty lists", "nesting", "keys", "empty strings", "empty objects", "integers", "fractions"],
)
def test_a_body_over_the_json_value_bound_is_413(body, what):
    error = refusal(body)
    assert status_of(error) == 413 and error.code == "json_too_complex"
    assert f"{MAX_JSON_VALUES:,}" in error.message and what in error.message


def test_true_false_and_null_are_not_counted():
    body = (TURN + '{"n": [' + "null, true, false, " * MAX_JSON_VALUES + "null]}}").encode()
    assert parse(body).text == "hi"


def test_the_bound_counts_exactly_and_not_what_strings_hold():
    # An earlier message holds 120,000 brackets and quotes, all inside one string: no values, but
    # enough to take the count past its quick over-estimate to the exact one.
    prose = 'Braces {like} these, [brackets] and "quotes". ' * 30_000
    messages = [{"role": "assistant", "content": prose}, {"role": "user", "content": "hi"}]

    def document(strings: int) -> dict:
        return {"messages": messages, "context": {"s": ["x"] * strings}}

    at_the_limit = document(1 + MAX_JSON_VALUES - values(document(1)))  # each further string is one more
    assert values(at_the_limit) == MAX_JSON_VALUES
    assert parse(json.dumps(at_the_limit).encode()).text == "hi"
    at_the_limit["context"]["s"].append("x")
    assert refusal(json.dumps(at_the_limit).encode()).code == "json_too_complex"


def test_the_number_bound_is_exact():
    def body(numbers: int) -> bytes:
        return json.dumps({"messages": [{"role": "user", "content": "hi"}], "context": {"n": [7] * numbers}}).encode()

    assert parse(body(MAX_JSON_VALUES)).text == "hi"
    assert refusal(body(MAX_JSON_VALUES + 1)).code == "json_too_complex"


def test_a_malformed_string_found_while_counting_is_invalid_json():
    body = b'{"messages": "unterminated' + b"[{" * MAX_JSON_VALUES + b"}"
    error = refusal(body)
    assert status_of(error) == 400 and error.code == "invalid_json"


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (TURN.encode() + b'{"temperature": NaN}}', "NaN"),
        (TURN.encode() + b'{"t": Infinity}}', "Infinity"),
        (TURN.encode() + b'{"t": [-Infinity]}}', "-Infinity"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "messages": []}', '"messages"'),
        (b'{"messages": [{"role": "user", "content": "hi", "content": "bye"}]}', '"content"'),
        (TURN.encode() + b'{"a": {"b": 1, "b": 1}}}', '"b"'),
    ],
    ids=["NaN", "Infinity", "-Infinity", "duplicate top-level key", "duplicate message key", "duplicate nested key"],
)
def test_json_that_python_reads_but_json_forbids_or_leaves_ambiguous_is_invalid_json(raw, said):
    error = refusal(raw)
    assert (status_of(error), error.code) == (400, "invalid_json")
    assert said in error.message


def test_a_key_named_twice_is_refused_also_beyond_the_value_count_check():
    # A long body is read through the counting path of json_body: the same rules hold there.
    filler = json.dumps({"s": "x" * (MAX_JSON_VALUES + 10)})
    raw = TURN.encode() + filler[:-1].encode() + b', "s": 1}}'
    assert refusal(raw).code == "invalid_json"


def test_the_message_bound_is_exact():
    message = {"role": "user", "content": "hi"}
    assert parse(json.dumps({"messages": [message] * MAX_MESSAGES}).encode()).text == "hi"
    error = refusal(json.dumps({"messages": [message] * (MAX_MESSAGES + 1)}).encode())
    assert status_of(error) == 413 and error.code == "too_many_messages"
    assert f"{MAX_MESSAGES:,}" in error.message
