"""The official openai Python package, unchanged, drives the responses of the OpenAI-compatible door
under /api/v1: plain and streamed, in a conversation or not, tools, chains and branches by
previous_response_id, stored, read, deleted and replayed, what a caller's instructions and item
references bring to the prompt, and the usage and token cap a response shows."""

from __future__ import annotations

import asyncio
import json
import uuid

import openai
import pytest
from openai import AsyncOpenAI

from chat.engine.history import response_partition
from chat.engine.ids import item_partition
from standins.protocol import text_of
from tests.support.prompts import contents, prompt_of

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def test_a_plain_and_a_streamed_response_in_a_conversation(client, model, standins):
    conversation = await client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "My name is Ada."}]
    )
    response = await client.responses.create(model=model, input="What is my name?", conversation=conversation.id)
    assert response.status == "completed" and response.object == "response"
    assert response.output_text == "Echo #1: What is my name?"
    assert response.conversation is not None and response.conversation.id == conversation.id
    assert response.usage is not None and response.usage.total_tokens > 0
    assert contents(prompt_of(standins, "What is my name?")) == ["My name is Ada.", "What is my name?"]

    events = []
    stream = await client.responses.create(
        model=model, input="And streamed?", conversation={"id": conversation.id}, stream=True
    )
    async for event in stream:
        events.append(event)
    kinds = [event.type for event in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    final = events[-1].response
    assert deltas == final.output_text == "Echo #3: And streamed?"

    # Both turns are in the conversation, in order, and readable again by response ID.
    items = [item async for item in client.conversations.items.list(conversation.id, order="asc")]
    assert [(item.role, item.content[0].text) for item in items] == [
        ("user", "My name is Ada."),
        ("user", "What is my name?"),
        ("assistant", "Echo #1: What is my name?"),
        ("user", "And streamed?"),
        ("assistant", "Echo #3: And streamed?"),
    ]
    again = await client.responses.retrieve(final.id)
    assert again.output_text == final.output_text and again.status == "completed"
    assert again.model_dump() == final.model_dump()


async def test_the_strict_stream_helper_and_its_final_response(client, model):
    async with client.responses.stream(model=model, input="Stream with the helper") as stream:
        deltas = [event.delta async for event in stream if event.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == final.output_text == "Echo #0: Stream with the helper"
    assert final.status == "completed" and final.conversation is None
    assert (await client.responses.retrieve(final.id)).output_text == final.output_text


async def test_a_client_that_hangs_up_mid_stream_finds_the_response_stored(client, model):
    stream = await client.responses.create(model=model, input="[[chunk-delay:50]] a slow answer", stream=True)
    response_id = None
    async for event in stream:
        if event.type == "response.created":
            response_id = event.response.id
        if event.type == "response.output_text.delta":
            break  # and hang up
    await stream.close()
    assert response_id is not None
    # In progress while the answer goes on without the client, then stored.
    for _ in range(200):
        stored = await client.responses.retrieve(response_id)
        if stored.status != "in_progress":
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the response was never stored")
    assert stored.status == "completed" and stored.output_text.endswith("a slow answer")


# -- tools -----------------------------------------------------------------------------------------


async def test_a_function_tool_round_trip(client, model, standins):
    tools = [
        {
            "type": "function",
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        }
    ]
    asked = '[[tool:get_weather {"city":"Paris"}]] What is the weather?'
    first = await client.responses.create(model=model, input=asked, tools=tools)
    [call] = first.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}

    second = await client.responses.create(
        model=model,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}],
        tools=tools,
    )
    assert second.output_text == "Tool result: sunny, 21 C"
    # The model saw the call and its output, paired.
    sent = standins.requests()[-1]["body"]["messages"]
    assistant = next(m for m in sent if m["role"] == "assistant" and m.get("tool_calls"))
    assert assistant["tool_calls"][0]["id"] == call.call_id
    assert sent[-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny, 21 C"}

    inputs = await client.responses.input_items.list(second.id)
    assert [item.type for item in inputs.data] == ["function_call_output"]


async def test_a_call_answered_after_another_turn_is_what_the_model_answers(client, model, standins):
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}]
    conversation = await client.conversations.create()
    first = await client.responses.create(
        model=model, input="[[tool:f {}]] call it", conversation=conversation.id, tools=tools
    )
    [call] = first.output
    await client.responses.create(model=model, input="actually, say hi", conversation=conversation.id, tools=tools)
    late = await client.responses.create(
        model=model,
        conversation=conversation.id,
        tools=tools,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "RESULT-42"}],
    )
    assert late.output_text == "Tool result: RESULT-42"
    sent = standins.requests()[-1]["body"]["messages"]
    assert sent[-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "RESULT-42"}
    assert sent[-2]["tool_calls"][0]["id"] == call.call_id


async def test_an_empty_string_input_is_refused_as_no_input_is_and_stores_nothing(client, model):
    conversation = await client.conversations.create()
    await client.responses.create(model=model, input="hello", conversation=conversation.id)
    before = [item.id async for item in client.conversations.items.list(conversation.id)]
    for empty in ("", []):
        with pytest.raises(openai.BadRequestError) as refused:
            await client.responses.create(model=model, input=empty, conversation=conversation.id)
        assert refused.value.code == "missing_required_parameter" and refused.value.param == "input"
    assert [item.id async for item in client.conversations.items.list(conversation.id)] == before
    assert len(before) == 2  # the first turn's message and its answer, no empty message after them


async def test_a_streamed_tool_call(client, model):
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]
    async with client.responses.stream(model=model, input="[[tool:lookup {}]] find it", tools=tools) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds
    assert [item.type for item in final.output] == ["function_call"]


# -- chains and branches ---------------------------------------------------------------------------


async def test_a_chain_and_a_branch_by_previous_response_id(client, model, standins):
    tag = uuid.uuid4().hex[:6]
    one = await client.responses.create(model=model, input=f"one {tag}")
    two = await client.responses.create(model=model, input=f"two {tag}", previous_response_id=one.id)
    assert two.previous_response_id == one.id and two.output_text == f"Echo #2: two {tag}"
    # A branch from the first: it sees the first, not the second.
    three = await client.responses.create(model=model, input=f"three {tag}", previous_response_id=one.id)
    assert three.output_text == f"Echo #2: three {tag}"
    assert contents(prompt_of(standins, f"three {tag}")) == [f"one {tag}", f"Echo #0: one {tag}", f"three {tag}"]
    # Each branch continues on its own.
    four = await client.responses.create(model=model, input=f"four {tag}", previous_response_id=two.id)
    assert four.output_text == f"Echo #4: four {tag}"
    assert contents(prompt_of(standins, f"four {tag}")) == [
        f"one {tag}",
        f"Echo #0: one {tag}",
        f"two {tag}",
        f"Echo #2: two {tag}",
        f"four {tag}",
    ]
    five = await client.responses.create(model=model, input=f"five {tag}", previous_response_id=three.id)
    assert five.output_text == f"Echo #4: five {tag}"
    assert f"two {tag}" not in contents(prompt_of(standins, f"five {tag}"))


async def test_a_chain_that_branches_off_a_conversations_response(client, model, standins):
    conversation = await client.conversations.create()
    first = await client.responses.create(model=model, input="in the conversation", conversation=conversation.id)
    branched = await client.responses.create(model=model, input="off it", previous_response_id=first.id)
    assert branched.conversation is None and branched.output_text == "Echo #2: off it"
    # The conversation does not get the branch's turn.
    items = (await client.conversations.items.list(conversation.id)).data
    assert len(items) == 2


async def test_a_fresh_app_whose_first_request_starts_a_chain(standins, azurite, model):
    # Nothing is read before a new chain's first turn: the write itself must make the tables.
    from tests.support.servers import AppServer, app_env

    fresh = AppServer(app_env(standins, azurite.connection_string)).start()
    try:
        async with AsyncOpenAI(base_url=f"{fresh.url}/api/v1", api_key="x", max_retries=0) as sdk:
            response = await sdk.responses.create(model=model, input="first of all")
            assert response.output_text == "Echo #0: first of all"
            assert (await sdk.responses.retrieve(response.id)).output_text == response.output_text
    finally:
        fresh.stop()


# -- stored responses ------------------------------------------------------------------------------


async def test_stored_responses_are_read_listed_and_deleted(client, model):
    response = await client.responses.create(model=model, input=[{"role": "user", "content": "keep me"}])
    read = await client.responses.retrieve(response.id)
    assert read.model_dump() == response.model_dump()
    inputs = await client.responses.input_items.list(response.id)
    assert [item.content[0].text for item in inputs.data] == ["keep me"]
    await client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError) as raised:
        await client.responses.create(model=model, input="after it", previous_response_id=response.id)
    assert raised.value.code == "previous_response_not_found"


async def test_a_response_not_stored_is_answered_and_not_found_after(client, model):
    response = await client.responses.create(model=model, input="forget me", store=False)
    assert response.output_text == "Echo #0: forget me" and response.store is False
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(response.id)


async def test_an_idempotency_key_replays_the_stored_response(client, model):
    key = uuid.uuid4().hex
    first = await client.responses.create(model=model, input="once", extra_headers={"Idempotency-Key": key})
    again = await client.responses.with_raw_response.create(
        model=model, input="once", extra_headers={"Idempotency-Key": key}
    )
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.parse().model_dump() == first.model_dump()
    with pytest.raises(openai.UnprocessableEntityError):
        await client.responses.create(model=model, input="something else", extra_headers={"Idempotency-Key": key})


# -- what reaches the model, and what the response shows -------------------------------------------


async def test_the_defaults_frameworks_send_are_accepted_and_the_prompt_cache_key_reaches_the_model(
    client, model, standins
):
    conversation = await client.conversations.create()
    plain = await client.responses.create(
        model=model,
        conversation=conversation.id,
        input="cache me",
        prompt_cache_key="tenant-7",
        reasoning={},
    )
    assert plain.output_text == "Echo #0: cache me" and plain.prompt_cache_key == "tenant-7"
    assert (await client.responses.retrieve(plain.id)).prompt_cache_key == "tenant-7"
    [sent] = [e["body"] for e in standins.requests() if e["body"]["messages"][-1]["content"] == "cache me"]
    assert sent["prompt_cache_key"] == "tenant-7"

    for obfuscation in (True, False):
        async with client.responses.stream(
            model=model,
            conversation=conversation.id,
            input=f"stream {obfuscation}",
            stream_options={"include_obfuscation": obfuscation},
            reasoning={"effort": None, "summary": None},
        ) as stream:
            final = await stream.get_final_response()
        assert final.output_text.endswith(f": stream {obfuscation}") and final.prompt_cache_key is None
    streamed = await client.responses.create(
        model=model, conversation=conversation.id, input="empty options", stream=True, stream_options={}
    )
    assert [event.type async for event in streamed][-1] == "response.completed"
    unkeyed = [e["body"] for e in standins.requests() if e["body"]["messages"][-1]["content"] == "empty options"]
    assert unkeyed and all("prompt_cache_key" not in sent for sent in unkeyed)
    assert len((await client.conversations.items.list(conversation.id, limit=100)).data) == 8


async def test_a_callers_instructions_and_system_messages_follow_the_servers_system_prompt(client, model, standins):
    first_text = f"hello {uuid.uuid4().hex[:8]}"
    first = await client.responses.create(
        model=model,
        instructions="Talk like a pirate.",
        input=[{"role": "developer", "content": "Answer in French."}, {"role": "user", "content": first_text}],
    )
    assert first.instructions == "Talk like a pirate."
    assert [(m["role"], m["content"]) for m in prompt_of(standins, first_text)] == [
        ("system", "You are the test assistant."),
        ("system", "Talk like a pirate."),
        ("system", "Answer in French."),
        ("user", first_text),
    ]
    # The next response keeps the developer message (an input item) but not the instructions.
    second_text = f"again {uuid.uuid4().hex[:8]}"
    second = await client.responses.create(model=model, input=second_text, previous_response_id=first.id)
    assert second.instructions is None
    assert [m["role"] for m in prompt_of(standins, second_text)] == ["system", "system", "user", "assistant", "user"]
    assert prompt_of(standins, second_text)[1]["content"] == "Answer in French."
    items = await client.responses.input_items.list(first.id)
    assert [(item.role, item.content[0].text) for item in items.data] == [
        ("user", first_text),
        ("developer", "Answer in French."),
    ]


async def test_item_references_bring_back_what_the_owner_stored_and_name_what_they_cannot(client, model, standins):
    # As the Vercel AI SDK sends a conversation it keeps itself: the earlier answer by reference.
    question = f"first {uuid.uuid4().hex[:8]}"
    first = await client.responses.create(model=model, input=question)
    answer = first.output[0]
    # The answer's ID names where it is stored, as the response's does: no index of the owner's.
    assert item_partition(answer.id) == response_partition(first.id) is not None
    follow_up = f"and then {uuid.uuid4().hex[:8]}"
    second = await client.responses.create(
        model=model,
        input=[
            {"role": "user", "content": question},
            {"type": "item_reference", "id": answer.id},
            {"role": "user", "content": follow_up},
        ],
    )
    assert second.output_text == f"Echo #2: {follow_up}"
    assert [(m["role"], m["content"]) for m in prompt_of(standins, follow_up)][1:] == [
        ("user", question),
        ("assistant", f"Echo #0: {question}"),
        ("user", follow_up),
    ]
    # The reference is stored as the item it names, under an ID of its own.
    items = await client.responses.input_items.list(second.id, order="asc")
    assert [item.role for item in items.data] == ["user", "assistant", "user"]
    assert items.data[1].content[0].text == f"Echo #0: {question}" and items.data[1].id != answer.id

    # With `type` left out, as the spec allows.
    third = await client.responses.create(model=model, input=[{"id": answer.id}, {"role": "user", "content": "x"}])
    assert third.status == "completed"

    before = len(standins.requests())
    with pytest.raises(openai.NotFoundError) as raised:
        await client.responses.create(
            model=model, input=[{"type": "item_reference", "id": "msg_" + "0" * 24}, {"role": "user", "content": "y"}]
        )
    assert (raised.value.code, raised.value.param) == ("item_not_found", "input[0]")
    assert "msg_000000000000000000000000" in raised.value.message
    assert len(standins.requests()) == before


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_usage_shows_the_cached_and_reasoning_tokens_the_model_reported(client, model, stream):
    text = f"think [[cached:5]] [[reasoning:3]] {uuid.uuid4().hex[:6]}"
    if stream:
        async with client.responses.stream(model=model, input=text) as events:
            response = await events.get_final_response()
    else:
        response = await client.responses.create(model=model, input=text)
    for shown in (response, await client.responses.retrieve(response.id)):
        assert shown.usage.input_tokens_details.cached_tokens == 5
        assert shown.usage.output_tokens_details.reasoning_tokens == 3


@pytest.fixture(scope="module")
def capped_server(standins, azurite):
    from tests.support.servers import AppServer, app_env

    instance = AppServer(app_env(standins, azurite.connection_string, CHAT_MAX_ANSWER_TOKENS="100")).start()
    yield instance
    instance.stop()


async def test_max_output_tokens_shows_the_cap_the_model_was_given(capped_server, model, standins):
    async with AsyncOpenAI(base_url=f"{capped_server.url}/api/v1", api_key="x", max_retries=0) as capped:
        unasked = await capped.responses.create(model=model, input="no cap asked")
        higher = await capped.responses.create(model=model, input="a higher cap", max_output_tokens=500)
        lower = await capped.responses.create(model=model, input="a lower cap", max_output_tokens=50)
        assert (unasked.max_output_tokens, higher.max_output_tokens, lower.max_output_tokens) == (100, 100, 50)
        assert (await capped.responses.retrieve(higher.id)).max_output_tokens == 100
    bodies = [e["body"] for e in standins.requests()]
    sent = {text_of(b["messages"][-1]["content"]): b.get("max_completion_tokens") for b in bodies}
    assert (sent["no cap asked"], sent["a higher cap"], sent["a lower cap"]) == (100, 100, 50)
