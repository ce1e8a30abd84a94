"""The official openai Python package, unchanged, drives the OpenAI-compatible door under /api/v1:
conversations and their items, plain and streamed responses, tools, chains and branches, the chat
routes on the same conversations, owners kept apart, and each error the SDK has a class for."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import openai
import pytest
from openai import AsyncOpenAI

from tests.support.api import Api

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def principal(user_id: str) -> str:
    claims = {"identityProvider": "aad", "userId": user_id, "userDetails": f"{user_id}@example.com", "userRoles": []}
    return base64.b64encode(json.dumps(claims).encode()).decode()


def prompt_of(standins, text: str) -> list[dict]:
    """The messages the model was sent with the request whose last user message was `text`."""
    for entry in reversed(standins.requests()):
        messages = entry["body"]["messages"]
        users = [m for m in messages if m["role"] == "user"]
        if users and users[-1]["content"] == text:
            return messages
    raise AssertionError(f"the model was never asked {text!r}")


def contents(messages: list[dict]) -> list[str]:
    return [m["content"] for m in messages if m["role"] in ("user", "assistant") and m.get("content")]


# -- conversations ----------------------------------------------------------------------------------


async def test_a_conversation_is_created_read_updated_and_deleted(client):
    created = await client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "Remember the number 7."}],
        metadata={"topic": "numbers"},
    )
    assert created.id.startswith("conv_") and created.object == "conversation"
    assert created.metadata == {"topic": "numbers"}
    read = await client.conversations.retrieve(created.id)
    assert (read.id, read.created_at, read.metadata) == (created.id, created.created_at, {"topic": "numbers"})
    updated = await client.conversations.update(created.id, metadata={"topic": "digits", "size": "1"})
    assert updated.metadata == {"topic": "digits", "size": "1"}
    assert (await client.conversations.retrieve(created.id)).metadata == {"topic": "digits", "size": "1"}
    [item] = (await client.conversations.items.list(created.id)).data
    assert item.type == "message" and item.role == "user"
    assert item.content[0].type == "input_text" and item.content[0].text == "Remember the number 7."

    deleted = await client.conversations.delete(created.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (created.id, True, "conversation.deleted")
    with pytest.raises(openai.NotFoundError):
        await client.conversations.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        await client.conversations.items.list(created.id)


async def test_items_are_added_paged_both_ways_read_and_deleted(client):
    conversation = await client.conversations.create()
    added = []
    for start in range(0, 25, 5):
        page = await client.conversations.items.create(
            conversation.id,
            items=[{"type": "message", "role": "user", "content": f"item {n}"} for n in range(start, start + 5)],
        )
        assert [item.content[0].text for item in page.data] == [f"item {n}" for n in range(start, start + 5)]
        added += page.data
    texts = [f"item {n}" for n in range(25)]

    # Auto-pagination follows has_more and last_id, in both orders.
    ascending = [item async for item in client.conversations.items.list(conversation.id, order="asc", limit=4)]
    assert [item.content[0].text for item in ascending] == texts
    descending = [item async for item in client.conversations.items.list(conversation.id, limit=7)]
    assert [item.content[0].text for item in descending] == texts[::-1]
    assert [item.id for item in ascending] == [item.id for item in added]

    first = await client.conversations.items.list(conversation.id, order="asc", limit=10)
    assert (first.first_id, first.last_id, first.has_more) == (added[0].id, added[9].id, True)
    after = await client.conversations.items.list(conversation.id, order="asc", after=added[19].id, limit=10)
    assert [item.content[0].text for item in after.data] == texts[20:] and after.has_more is False

    one = await client.conversations.items.retrieve(added[3].id, conversation_id=conversation.id)
    assert one.id == added[3].id and one.content[0].text == "item 3"
    after_delete = await client.conversations.items.delete(added[3].id, conversation_id=conversation.id)
    assert after_delete.id == conversation.id
    with pytest.raises(openai.NotFoundError):
        await client.conversations.items.retrieve(added[3].id, conversation_id=conversation.id)
    left = [item async for item in client.conversations.items.list(conversation.id, order="asc")]
    assert [item.content[0].text for item in left] == texts[:3] + texts[4:]


async def test_bad_conversation_requests_are_400s_and_change_nothing(client):
    conversation = await client.conversations.create(metadata={"a": "1"})
    with pytest.raises(openai.BadRequestError) as raised:
        await client.conversations.items.create(
            conversation.id, items=[{"type": "message", "role": "user", "content": str(n)} for n in range(21)]
        )
    assert raised.value.code == "array_above_max_length" and raised.value.param == "items"
    with pytest.raises(openai.BadRequestError) as raised:
        await client.conversations.update(conversation.id, metadata={f"k{n}": "v" for n in range(17)})
    assert raised.value.param == "metadata"
    with pytest.raises(openai.BadRequestError) as raised:
        await client.conversations.items.list(conversation.id, limit=101)
    assert raised.value.param == "limit"
    assert (await client.conversations.retrieve(conversation.id)).metadata == {"a": "1"}
    assert (await client.conversations.items.list(conversation.id)).data == []


async def test_nan_infinity_and_keys_named_twice_are_invalid_json_and_store_nothing(client, model, server, standins):
    # The SDK itself refuses to write NaN or Infinity; other clients (Python's json.dumps) do.
    conversation = await client.conversations.create(metadata={"a": "1"})
    calls = len(standins.requests())
    base = f"/api/v1/conversations/{conversation.id}"
    turn = json.dumps({"model": model, "input": "hi", "conversation": conversation.id})[:-1] + ", "
    async with Api(server.url) as api:
        for path, raw, said in [
            ("/api/v1/responses", turn + '"temperature": NaN}', "NaN"),
            ("/api/v1/responses", turn + '"top_p": Infinity}', "Infinity"),
            ("/api/v1/responses", turn + '"temperature": -Infinity}', "-Infinity"),
            ("/api/v1/responses", turn + '"input": "again"}', "twice"),
            (
                base + "/items",
                '{"items": [{"type": "message", "role": "user", "content": "a", "content": "b"}]}',
                "twice",
            ),
            (base, '{"metadata": {"a": "2"}, "metadata": {"a": "3"}}', "twice"),
            ("/api/v1/conversations", '{"metadata": {"k": "1", "k": "2"}}', "twice"),
        ]:
            reply = await api.request("POST", path, body=raw.encode())
            assert reply.status == 400, (path, reply.body)
            assert reply.body["error"]["code"] == "invalid_json" and said in reply.body["error"]["message"]
    assert len(standins.requests()) == calls
    assert (await client.conversations.retrieve(conversation.id)).metadata == {"a": "1"}
    assert (await client.conversations.items.list(conversation.id)).data == []


# -- responses --------------------------------------------------------------------------------------


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


async def test_a_streamed_tool_call(client, model):
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]
    async with client.responses.stream(model=model, input="[[tool:lookup {}]] find it", tools=tools) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds
    assert [item.type for item in final.output] == ["function_call"]


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


# -- one conversation, both doors ------------------------------------------------------------------


async def test_a_conversation_made_here_continues_on_the_chat_routes_and_back(client, model, server):
    conversation = await client.conversations.create(items=[{"type": "message", "role": "user", "content": "hi"}])
    async with Api(server.url) as api:
        reply = await api.chat("from the chat route", conversation.id)
        assert reply.status == 200 and reply.body["sessionState"] == conversation.id
        assert reply.body["message"]["content"] == "Echo #1: from the chat route"
        back = await client.responses.create(model=model, input="and back", conversation=conversation.id)
        assert back.output_text == "Echo #3: and back"

        # A conversation started on the chat routes is one here too.
        started = await api.chat("started on /api/chat")
        session = started.body["sessionState"]
        items = (await client.conversations.items.list(session, order="asc")).data
        assert [item.content[0].text for item in items] == ["started on /api/chat", "Echo #0: started on /api/chat"]
        assert (await client.conversations.retrieve(session)).id == session


# -- owners ----------------------------------------------------------------------------------------


async def test_two_owners_are_kept_apart(trusted_server, model):
    def sdk(user: str) -> AsyncOpenAI:
        return AsyncOpenAI(
            base_url=f"{trusted_server.url}/api/v1",
            api_key="unused-here",
            max_retries=0,
            default_headers={"x-ms-client-principal": principal(user)},
        )

    async with sdk("ada") as ada, sdk("bob") as bob:
        conversation = await ada.conversations.create(items=[{"type": "message", "role": "user", "content": "mine"}])
        response = await ada.responses.create(model=model, input="secret", conversation=conversation.id)
        item = (await ada.conversations.items.list(conversation.id)).data[0]
        for attempt in (
            bob.conversations.retrieve(conversation.id),
            bob.conversations.items.list(conversation.id),
            bob.conversations.items.retrieve(item.id, conversation_id=conversation.id),
            bob.conversations.delete(conversation.id),
            bob.responses.retrieve(response.id),
            bob.responses.delete(response.id),
            bob.responses.input_items.list(response.id),
            bob.responses.create(model=model, input="peek", previous_response_id=response.id),
            bob.responses.create(model=model, input="peek", conversation=conversation.id),
        ):
            with pytest.raises(openai.NotFoundError):
                await attempt
        # Nothing of Ada's changed.
        assert (await ada.responses.retrieve(response.id)).output_text == response.output_text
        assert len((await ada.conversations.items.list(conversation.id)).data) == 3

    async with AsyncOpenAI(base_url=f"{trusted_server.url}/api/v1", api_key="x", max_retries=0) as anonymous:
        with pytest.raises(openai.AuthenticationError):
            await anonymous.conversations.create()


# -- errors ----------------------------------------------------------------------------------------


async def test_each_error_reaches_the_sdk_as_its_class(client, model, server):
    with pytest.raises(openai.BadRequestError) as raised:
        await client.responses.create(model=model, input="hi", reasoning={"effort": "high"})
    assert raised.value.code == "unsupported_parameter" and raised.value.param == "reasoning"
    with pytest.raises(openai.NotFoundError) as raised:
        await client.responses.create(model="gpt-unknown", input="hi")
    assert raised.value.code == "model_not_found" and raised.value.param == "model"
    with pytest.raises(openai.NotFoundError) as raised:
        await client.responses.create(model=model, input="hi", conversation="conv_nobody")
    assert raised.value.code == "conversation_not_found"
    with pytest.raises(openai.APIStatusError) as raised:
        await client.responses.create(model=model, input="x" * 100_001)
    assert raised.value.status_code == 413 and raised.value.body["code"] == "message_too_large"

    with pytest.raises(openai.RateLimitError) as raised:
        await client.responses.create(model=model, input="[[429]] busy")
    assert raised.value.response.headers["retry-after"] == "7"
    assert raised.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.InternalServerError) as raised:
        await client.responses.create(model=model, input="[[500]] down")
    assert raised.value.status_code == 502
    assert "Traceback" not in raised.value.response.text

    # None of the refused requests made a conversation or a response.
    async with Api(server.url) as api:
        listed = (await api.conversations(limit=200)).body
    assert not any(c["title"].startswith(("x" * 20, "[[429]]", "[[500]]")) for c in listed["conversations"])


async def test_a_stream_that_fails_after_it_started_ends_with_response_failed(client, model):
    async with client.responses.stream(model=model, input="[[cut]] half an answer") as stream:
        events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and "response.output_text.delta" in kinds
    assert kinds[-1] == "response.failed"
    failed = events[-1].response
    assert failed.status == "failed" and failed.error is not None and failed.error.code == "server_error"
    # A failed model call stores nothing.
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(failed.id)


async def test_concurrent_responses_in_one_conversation_all_land(client, model):
    conversation = await client.conversations.create()
    answers = await asyncio.gather(
        *(client.responses.create(model=model, input=f"at once {n}", conversation=conversation.id) for n in range(6))
    )
    assert len({answer.id for answer in answers}) == 6
    items = [item async for item in client.conversations.items.list(conversation.id, order="asc")]
    assert len(items) == 12
    # Each turn is whole: every user message is followed by its own answer.
    for question, answer in zip(items[::2], items[1::2], strict=True):
        assert answer.content[0].text.endswith(question.content[0].text)


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


@pytest.fixture
async def impatient_app(in_process, monkeypatch):
    """The app in this process, giving up after one clash on a conversation's head (the real one
    renumbers 64 times first), so that a 409 can be made at will."""
    import threading

    import uvicorn

    from chat.engine import commit
    from tests.support.ports import free_port

    monkeypatch.setattr(commit, "MAX_COMMIT_ATTEMPTS", 1)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config("chat.local:app", host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(300):
        if server.started:
            break
        await asyncio.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.to_thread(thread.join, 30)


async def test_two_responses_that_clash_on_a_conversation_give_a_409(impatient_app, standins, model):
    hold = f"clash-{uuid.uuid4().hex[:8]}"
    async with AsyncOpenAI(base_url=f"{impatient_app}/api/v1", api_key="x", max_retries=0) as sdk:
        conversation = await sdk.conversations.create()
        both = [
            asyncio.ensure_future(
                sdk.responses.create(model=model, input=f"[[hold:{hold}]] {n}", conversation=conversation.id)
            )
            for n in range(2)
        ]
        # Both have read the conversation and are waiting for the model: whichever stores second
        # finds the head moved.
        while standins.model.holds.waiting(hold) < 2:  # noqa: ASYNC110 (a count in another thread)
            await asyncio.sleep(0.02)
        standins.model.holds.release(hold)
        results = await asyncio.gather(*both, return_exceptions=True)
        [conflict] = [r for r in results if isinstance(r, Exception)]
        assert isinstance(conflict, openai.ConflictError), conflict
        assert conflict.code == "conversation_busy"
        [stored] = [r for r in results if not isinstance(r, Exception)]
        # Only the winner's turn is stored, whole.
        items = (await sdk.conversations.items.list(conversation.id, order="asc")).data
        assert [item.role for item in items] == ["user", "assistant"]
        assert items[1].content[0].text == stored.output_text
        assert stored.output_text.endswith(items[0].content[0].text)


# -- what a review found: each case seen failing before its fix ------------------------------------


def model_calls(standins) -> int:
    return len(standins.requests())


async def test_a_deleted_conversations_responses_are_gone_with_it(client, model, standins):
    conversation = await client.conversations.create()
    secret = f"my secret is {uuid.uuid4().hex[:6]}"
    first = await client.responses.create(model=model, input=secret, conversation=conversation.id)
    branched = await client.responses.create(model=model, input="branch off", previous_response_id=first.id)
    await client.conversations.delete(conversation.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.input_items.list(first.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.create(model=model, input="again", previous_response_id=first.id)
    # The chain that branched off goes on, without the deleted turn.
    later = await client.responses.create(model=model, input="and later", previous_response_id=branched.id)
    assert secret not in contents(prompt_of(standins, "and later"))
    assert later.output_text == "Echo #2: and later"


async def test_a_delete_cut_short_after_its_floor_leaves_no_response_readable(client, model, server, azurite):
    from azure.data.tables.aio import TableClient

    from chat.engine.history import Conversation
    from chat.storage.messages import TurnStore
    from chat.storage.tables import Table

    conversation = await client.conversations.create()
    response = await client.responses.create(model=model, input="soon deleted", conversation=conversation.id)
    table = TableClient.from_connection_string(
        azurite.connection_string, table_name=server.env["CHAT_TABLE_PREFIX"] + "messages"
    )
    store = TurnStore(Table(table))
    try:
        await store.raise_floor(Conversation("app", conversation.id))  # and the delete stops there
    finally:
        await store.close()
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.create(model=model, input="after it", previous_response_id=response.id)


@pytest.mark.parametrize("case", ["a thousand items", "huge tools"])
async def test_input_that_cannot_be_stored_is_a_413_before_the_model_is_asked(client, model, standins, case):
    conversation = await client.conversations.create()
    calls = model_calls(standins)
    with pytest.raises(openai.APIStatusError) as raised:
        if case == "a thousand items":
            await client.responses.create(model=model, input=[{"role": "user", "content": "x"}] * 1000)
        elif case == "huge tools":
            tools = [
                {"type": "function", "name": f"tool_{n}", "description": "d" * 2_000, "parameters": {"type": "object"}}
                for n in range(128)
            ]
            await client.responses.create(model=model, input="hi", tools=tools, conversation=conversation.id)
    assert raised.value.status_code == 413
    assert raised.value.body["code"] == "input_too_large" and raised.value.body["param"] == "input"
    assert model_calls(standins) == calls
    assert (await client.conversations.items.list(conversation.id)).data == []


async def test_an_idempotency_key_of_a_chat_turn_is_not_a_responses(client, model, server):
    key = uuid.uuid4().hex
    conversation = await client.conversations.create()
    async with Api(server.url) as api:
        reply = await api.chat("same words", conversation.id, headers={"Idempotency-Key": key})
        assert reply.status == 200
    for stream in (False, True):
        with pytest.raises(openai.UnprocessableEntityError):
            await client.responses.create(
                model=model,
                input="same words",
                conversation=conversation.id,
                stream=stream,
                extra_headers={"Idempotency-Key": key},
            )


async def test_a_request_the_model_refuses_for_the_clients_tools_is_a_400(client, model, standins):
    calls = model_calls(standins)
    bad_tool = [{"type": "function", "name": "odd", "parameters": {"type": "banana"}}]
    with pytest.raises(openai.BadRequestError) as raised:
        await client.responses.create(model=model, input="hi", tools=bad_tool)
    assert raised.value.code == "model_rejected_request"
    # Asked once: a 400 is not retried.
    assert model_calls(standins) == calls + 1


async def test_a_function_call_output_without_its_call_is_a_400(client, model, standins):
    conversation = await client.conversations.create()
    calls = model_calls(standins)
    with pytest.raises(openai.BadRequestError) as raised:
        await client.responses.create(
            model=model,
            conversation=conversation.id,
            input=[{"type": "function_call_output", "call_id": "call_nope", "output": "x"}],
        )
    assert raised.value.code == "function_call_not_found" and raised.value.param == "input"
    assert model_calls(standins) == calls
    assert (await client.conversations.items.list(conversation.id)).data == []


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_paging_goes_on_after_an_item_deleted_between_pages(client, order):
    conversation = await client.conversations.create(
        items=[{"type": "message", "role": "user", "content": f"n{n}"} for n in range(6)]
    )
    first = await client.conversations.items.list(conversation.id, order=order, limit=2)
    await client.conversations.items.delete(first.last_id, conversation_id=conversation.id)
    rest = await client.conversations.items.list(conversation.id, order=order, limit=10, after=first.last_id)
    expected = ["n2", "n3", "n4", "n5"] if order == "asc" else ["n3", "n2", "n1", "n0"]
    assert [item.content[0].text for item in rest.data] == expected
    # A deleted item cannot be read or deleted again.
    with pytest.raises(openai.NotFoundError):
        await client.conversations.items.delete(first.last_id, conversation_id=conversation.id)


async def test_unknown_paths_under_v1_answer_in_openais_shape(client):
    with pytest.raises(openai.NotFoundError) as raised:
        await client.post("/embeddings", cast_to=object, body={"input": "x"})
    assert raised.value.body["type"] == "invalid_request_error" and raised.value.code == "not_found"


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


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/responses/input_tokens"),
        ("post", "/responses/compact"),
        ("get", "/responses/input_tokens"),
        ("delete", "/responses/compact"),
        ("get", "/responses/compact/input_items"),
        ("get", "/responses/not-a-response-id"),
    ],
)
async def test_a_segment_that_is_no_response_id_is_no_route_not_a_405(client, model, method, path):
    # /responses/{id} takes only what a response ID can be; OpenAI's other operations under
    # /responses are not served here, and say so as a missing route, not as a wrong method.
    options = {"body": {"model": model, "input": "hi"}} if method == "post" else {}
    with pytest.raises(openai.NotFoundError) as raised:
        await getattr(client, method)(path, cast_to=object, **options)
    assert raised.value.status_code == 404
    assert set(raised.value.body) == {"message", "type", "param", "code"}
    assert (raised.value.body["type"], raised.value.code) == ("invalid_request_error", "not_found")
    stored = await client.responses.create(model=model, input="still here")
    assert (await client.responses.retrieve(stored.id)).id == stored.id


async def test_the_list_counts_a_conversations_items(client, model, server):
    conversation = await client.conversations.create(
        items=[{"type": "message", "role": "user", "content": f"part {n}"} for n in range(3)]
    )
    await client.responses.create(model=model, input="and a question", conversation=conversation.id)
    async with Api(server.url) as api:
        listed = (await api.conversations(limit=200)).body["conversations"]
    [entry] = [c for c in listed if c["id"] == conversation.id]
    assert entry["message_count"] == 5
    assert entry["title"].startswith("part 0 part 1 part 2")


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


async def test_another_owners_item_cannot_be_referenced(trusted_server, model):
    def sdk(user: str) -> AsyncOpenAI:
        headers = {"x-ms-client-principal": principal(user)}
        return AsyncOpenAI(base_url=f"{trusted_server.url}/api/v1", api_key="x", max_retries=0, default_headers=headers)

    async with sdk(f"ada-{uuid.uuid4().hex}") as ada, sdk(f"bob-{uuid.uuid4().hex}") as bob:
        secret = await ada.responses.create(model=model, input="my secret")
        with pytest.raises(openai.NotFoundError) as raised:
            await bob.responses.create(model=model, input=[{"type": "item_reference", "id": secret.output[0].id}])
        assert raised.value.code == "item_not_found"
        mine = await ada.responses.create(model=model, input=[{"type": "item_reference", "id": secret.output[0].id}])
        assert mine.status == "completed"


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
    sent = {e["body"]["messages"][-1]["content"]: e["body"].get("max_completion_tokens") for e in standins.requests()}
    assert (sent["no cap asked"], sent["a higher cap"], sent["a lower cap"]) == (100, 100, 50)
