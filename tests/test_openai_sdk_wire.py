"""Conversations, items, stored responses and errors through the openai SDK, against the wire layer."""

from __future__ import annotations

import openai
import pytest
from openai.types.conversations import Conversation

from chat.engine import errors
from chat.web import errors as web_errors
from chat.web.errors import headers_of
from chat.web.openai.errors import InvalidParameter
from chat.web.openai.requests import parse_conversation_create, parse_response_request
from tests.fakes.openai_door import CONVERSATION_ITEMS, ERRORS, MODEL, body, error_reply, refusal, sdk_client, serve

wire = pytest.fixture(scope="module", name="wire")(serve)
client = pytest.fixture(name="client")(sdk_client)


# ---------------------------------------------------------------------------------------------------
# Conversations, items and stored responses through the SDK


def test_conversations_through_the_sdk(client, wire):
    made = client.conversations.create(items=[{"role": "user", "content": "hello"}], metadata={"topic": "weather"})
    assert isinstance(made, Conversation) and (made.id, made.metadata) == ("conv_made", {"topic": "weather"})
    assert [(item.role, item.text) for item in wire.parsed[-1].items] == [("user", "hello")]
    assert client.conversations.retrieve("conv_1").metadata == {"topic": "weather"}
    assert client.conversations.update("conv_1", metadata={"topic": "snow"}).metadata == {"topic": "snow"}
    assert wire.parsed[-1].metadata == {"topic": "snow"}
    deleted = client.conversations.delete("conv_1")
    assert (deleted.id, deleted.deleted, deleted.object) == ("conv_1", True, "conversation.deleted")


def test_items_added_and_read_through_the_sdk(client, wire):
    added = client.conversations.items.create(
        "conv_1",
        items=[
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
            {"type": "function_call_output", "call_id": "call_1", "output": "-3 C"},
        ],
        include=["reasoning.encrypted_content"],
    )
    assert wire.parsed[-1].include == ("reasoning.encrypted_content",)
    assert ("include[]", "reasoning.encrypted_content") in wire.queries[-1]
    assert [item.type for item in added.data] == ["message", "function_call_output"]
    assert (added.first_id, added.last_id) == (added.data[0].id, added.data[1].id)
    item = client.conversations.items.retrieve(CONVERSATION_ITEMS[1].id, conversation_id="conv_1")
    assert (item.type, item.call_id, item.status) == ("function_call", "call_1", "completed")
    with pytest.raises(openai.NotFoundError) as caught:
        client.conversations.items.retrieve("msg_missing", conversation_id="conv_1")
    assert caught.value.code == "item_not_found"
    assert client.conversations.items.delete(CONVERSATION_ITEMS[0].id, conversation_id="conv_1").id == "conv_1"


def test_item_lists_page_both_ways_through_the_sdk(client, wire):
    ascending = client.conversations.items.list("conv_1", limit=2, order="asc")
    assert [item.id for item in ascending] == [item.id for item in CONVERSATION_ITEMS]
    descending = client.conversations.items.list("conv_1", limit=2)
    assert [item.id for item in descending] == [item.id for item in reversed(CONVERSATION_ITEMS)]
    first = client.conversations.items.list("conv_1", limit=2, order="asc", after=CONVERSATION_ITEMS[2].id)
    assert [item.id for item in first.data] == [item.id for item in CONVERSATION_ITEMS[3:]]
    assert first.has_more is False and not first.has_next_page()
    empty = client.conversations.items.list("conv_empty")
    assert (empty.data, empty.has_more, empty.last_id, empty.has_next_page()) == ([], False, "", False)
    with pytest.raises(openai.BadRequestError) as caught:
        client.conversations.items.list("conv_1", limit=101)
    assert (caught.value.param, caught.value.type) == ("limit", "invalid_request_error")


def test_stored_responses_through_the_sdk(client, wire):
    response = client.responses.retrieve("resp_7")
    assert (response.id, response.output_text) == ("resp_7", "Hello, world")
    assert client.responses.delete("resp_7") is None
    inputs = client.responses.input_items.list("resp_7", limit=3, order="asc")
    assert [item.id for item in inputs] == [item.id for item in CONVERSATION_ITEMS]
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.retrieve("resp_7", extra_query={"stream": "yes"})
    assert caught.value.param == "stream"


# ---------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("status", "sdk_error", "kind"),
    [
        (400, openai.BadRequestError, "invalid_request_error"),
        (401, openai.AuthenticationError, "invalid_request_error"),
        (403, openai.PermissionDeniedError, "invalid_request_error"),
        (404, openai.NotFoundError, "invalid_request_error"),
        (409, openai.ConflictError, "invalid_request_error"),
        (413, openai.APIStatusError, "invalid_request_error"),
        (422, openai.UnprocessableEntityError, "invalid_request_error"),
        (429, openai.RateLimitError, "requests"),
        (502, openai.InternalServerError, "server_error"),
        (503, openai.InternalServerError, "server_error"),
        (504, openai.InternalServerError, "server_error"),
    ],
)
def test_each_error_reaches_the_sdk_as_its_class(client, status, sdk_error, kind):
    with pytest.raises(sdk_error) as caught:
        client.responses.retrieve(f"resp_error_{status}")
    error, raised = caught.value, ERRORS[status]
    assert (error.status_code, error.type, error.body["message"]) == (status, kind, raised.message)
    assert error.code == ("rate_limit_exceeded" if status == 429 else raised.code)
    assert set(error.body) == {"message", "type", "param", "code"}
    assert error.response.headers.get("retry-after") == headers_of(raised).get("Retry-After")
    assert "Traceback" not in error.response.text


def test_the_error_body_and_headers():
    status, headers, body = error_reply(InvalidParameter("Invalid 'limit'.", param="limit"))
    assert (status, headers) == (400, {})
    assert body == {
        "error": {
            "message": "Invalid 'limit'.",
            "type": "invalid_request_error",
            "param": "limit",
            "code": "invalid_value",
        }
    }
    status, headers, body = error_reply(
        errors.RateLimited("The daily token quota is spent.", retry_after=3600, code="quota_exceeded")
    )
    assert (status, headers, body["error"]["type"]) == (429, {"Retry-After": "3600"}, "tokens")
    assert body["error"]["code"] == "quota_exceeded"
    status, headers, _ = error_reply(web_errors.MethodNotAllowed("PUT", ("GET", "POST")))
    assert (status, headers["Allow"]) == (405, "GET, POST")
    status, _, body = error_reply(errors.ChatError("The answer ended before it was settled.", code="server_error"))
    assert (status, body["error"]["type"]) == (500, "server_error")


def test_item_references_keep_their_places_with_or_without_a_type():
    parsed = parse_response_request(
        body(
            model=MODEL,
            input=[
                {"role": "user", "content": "hello"},
                {"type": "item_reference", "id": "msg_1"},
                {"id": "fc_2"},
                {"content": "and then?", "role": "user"},
            ],
        )
    )
    assert [(ref.position, ref.id) for ref in parsed.references] == [(1, "msg_1"), (2, "fc_2")]
    assert [(item.role, item.text) for item in parsed.inputs] == [("user", "hello"), ("user", "and then?")]


def test_an_item_reference_elsewhere_than_a_responses_input_is_a_400():
    error = refusal(lambda: parse_conversation_create(body(items=[{"type": "item_reference", "id": "msg_1"}])))
    assert (error.param, error.code) == ("items[0]", "unsupported_parameter")
