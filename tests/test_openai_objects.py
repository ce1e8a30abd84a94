"""The OpenAI door's objects (responses, items, conversations), read by the SDK's own types."""

from __future__ import annotations

import pytest
from openai.types.conversations import Conversation, ConversationDeletedResource, ConversationItem, ConversationItemList
from openai.types.responses import (
    Response,
    ResponseFunctionToolCall,
    ResponseItem,
    ResponseItemList,
    ResponseOutputItem,
    ResponseOutputMessage,
)

from chat.engine import errors
from chat.engine.items import Item, Usage, function_call, function_call_output, message
from chat.engine.model import Completion
from chat.web.openai.objects import (
    conversation_deleted,
    conversation_object,
    fail,
    finish,
    item_list,
    item_object,
    response_deleted,
    response_object,
)
from tests.fakes.openai_door import CONVERSATION_ITEMS, CREATED, HEAD, REFUSED, RESPONSE_KEYS, exact

# ---------------------------------------------------------------------------------------------------
# Objects, read by the SDK's types


def answer(*outputs: Item, finish: str = "stop") -> Completion:
    return Completion(outputs, finish, Usage(prompt_tokens=12, completion_tokens=5))


def test_the_skeleton_of_a_response_reads_as_one_in_progress():
    data = response_object(HEAD)
    response = exact(Response, data)
    assert set(data) >= RESPONSE_KEYS
    assert (response.status, response.output, response.usage, response.error) == ("in_progress", [], None, None)
    assert (response.conversation.id, response.tools[0].name, response.tool_choice) == ("conv_1", "weather", "auto")
    assert (response.instructions, response.text.format.type, response.completed_at) == (None, "text", None)


def test_a_completed_response_with_text_and_a_call():
    said = message("assistant", "Let me look.")
    call = function_call("call_1", "weather", '{"city": "Oslo"}')
    data = finish(response_object(HEAD), answer(said, call, finish="tool_calls"), completed_at=CREATED + 2)
    response = exact(Response, data)
    assert set(data) >= RESPONSE_KEYS
    assert (response.status, response.completed_at, response.incomplete_details) == ("completed", CREATED + 2, None)
    assert response.output_text == "Let me look."
    message_out, call_out = response.output
    assert isinstance(message_out, ResponseOutputMessage) and message_out.id == said.id
    assert (message_out.status, message_out.content[0].annotations) == ("completed", [])
    assert isinstance(call_out, ResponseFunctionToolCall)
    assert (call_out.id, call_out.call_id, call_out.name, call_out.arguments, call_out.status) == (
        call.id,
        "call_1",
        "weather",
        '{"city": "Oslo"}',
        "completed",
    )
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (12, 5, 17)
    assert (usage.input_tokens_details.cached_tokens, usage.output_tokens_details.reasoning_tokens) == (0, 0)


@pytest.mark.parametrize(("ended", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")])
def test_an_answer_cut_short_is_an_incomplete_response(ended, reason):
    data = finish(response_object(HEAD), answer(message("assistant", "Hel"), finish=ended), completed_at=CREATED + 2)
    response = exact(Response, data)
    assert (response.status, response.incomplete_details.reason, response.completed_at) == ("incomplete", reason, None)
    assert response.output[0].status == "incomplete"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.RateLimited("The model is rate limited.", retry_after=3), "rate_limit_exceeded"),
        (errors.ContentFiltered("The prompt was filtered by the model's content policy."), "invalid_prompt"),
        (errors.ModelUnavailable("The model's answer was cut off.", code="model_stream_interrupted"), "server_error"),
        (errors.StorageUnavailable("Table Storage is unreachable."), "server_error"),
    ],
)
def test_a_failed_response_carries_its_error(error, code):
    data = fail(response_object(HEAD), error, [message("assistant", "Hel")])
    response = exact(Response, data)
    assert (response.status, response.error.code, response.error.message) == ("failed", code, error.message)
    assert (response.output[0].status, response.usage) == ("incomplete", None)


def test_items_read_as_conversation_items_and_response_items():
    shapes = {
        "user": message("user", "Weather?"),
        "assistant": message("assistant", "Sunny."),
        "call": function_call("call_1", "weather", "{}"),
        "output": function_call_output("call_1", "-3 C"),
    }
    for name, item in shapes.items():
        data = item_object(item)
        assert data["id"] == item.id and data["status"] == "completed"
        for sdk_type in (ConversationItem, ResponseItem):
            read = exact(sdk_type, data)
            assert read.type == item.kind and read.id == item.id, (name, sdk_type)
    assert item_object(shapes["user"])["content"] == [{"type": "input_text", "text": "Weather?"}]
    assert item_object(shapes["assistant"])["content"] == [
        {"type": "output_text", "text": "Sunny.", "annotations": [], "logprobs": []}
    ]
    assert exact(ResponseOutputItem, item_object(shapes["call"])).call_id == "call_1"
    assert exact(ResponseOutputItem, item_object(shapes["assistant"])).role == "assistant"


def test_a_refusal_is_a_message_with_a_refusal_part_and_no_output_text():
    refused = message("assistant", REFUSED, refusal=True)
    data = finish(response_object(HEAD), answer(refused), completed_at=CREATED + 2)
    response = exact(Response, data)
    assert (response.status, response.output_text) == ("completed", "")
    [shown] = response.output
    assert isinstance(shown, ResponseOutputMessage) and shown.id == refused.id
    assert (shown.content[0].type, shown.content[0].refusal) == ("refusal", REFUSED)
    assert item_object(refused)["content"] == [{"type": "refusal", "refusal": REFUSED}]
    for sdk_type in (ConversationItem, ResponseItem):
        assert exact(sdk_type, item_object(refused)).content[0].type == "refusal"


def test_lists_conversations_and_deletions():
    data = item_list(CONVERSATION_ITEMS[:2], has_more=True)
    for sdk_type in (ConversationItemList, ResponseItemList):
        read = exact(sdk_type, data)
        assert (read.first_id, read.last_id, read.has_more) == (
            CONVERSATION_ITEMS[0].id,
            CONVERSATION_ITEMS[1].id,
            True,
        )
    assert item_list((), has_more=False) == {
        "object": "list",
        "data": [],
        "first_id": "",
        "last_id": "",
        "has_more": False,
    }
    conversation = exact(Conversation, conversation_object("conv_1", CREATED, {"topic": "x"}))
    assert (conversation.id, conversation.created_at, conversation.metadata) == ("conv_1", CREATED, {"topic": "x"})
    deleted = exact(ConversationDeletedResource, conversation_deleted("conv_1"))
    assert (deleted.id, deleted.deleted) == ("conv_1", True)
    assert response_deleted("resp_1") == {"id": "resp_1", "object": "response.deleted", "deleted": True}
