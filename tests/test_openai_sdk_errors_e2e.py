"""The official openai Python package, unchanged, meets each error of the OpenAI-compatible door under
/api/v1 as the class it has for it: bad requests, a model or conversation not found, input too large
to store, a rate limit, a failed model call (before and after a stream started), a conversation busy
with another response, a reused idempotency key, and paths that are no route."""

from __future__ import annotations

import asyncio
import uuid

import openai
import pytest
from openai import AsyncOpenAI

from tests.support.api import Api

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def test_each_error_reaches_the_sdk_as_its_class(client, model, server):
    with pytest.raises(openai.BadRequestError) as raised:
        await client.responses.create(model=model, input="hi", reasoning={"effort": "high", "summary": "auto"})
    assert raised.value.code == "unsupported_parameter" and raised.value.param == "reasoning.summary"
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


# -- refused before the model is asked, or by it ---------------------------------------------------


def model_calls(standins) -> int:
    return len(standins.requests())


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


# -- no route --------------------------------------------------------------------------------------


async def test_unknown_paths_under_v1_answer_in_openais_shape(client):
    with pytest.raises(openai.NotFoundError) as raised:
        await client.post("/embeddings", cast_to=object, body={"input": "x"})
    assert raised.value.body["type"] == "invalid_request_error" and raised.value.code == "not_found"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/responses/tokens"),
        ("post", "/responses/compaction"),
        ("get", "/responses/input_tokens/x"),
        ("delete", "/responses/count"),
        ("get", "/responses/compact/input_items"),
        ("get", "/responses/not-a-response-id"),
    ],
)
async def test_a_segment_that_is_no_response_id_is_no_route_not_a_405(client, model, method, path):
    # /responses/{id} takes only what a response ID can be; other words under /responses (but
    # input_tokens and compact, routes of their own) are a missing route, not a wrong method.
    options = {"body": {"model": model, "input": "hi"}} if method == "post" else {}
    with pytest.raises(openai.NotFoundError) as raised:
        await getattr(client, method)(path, cast_to=object, **options)
    assert raised.value.status_code == 404
    assert set(raised.value.body) == {"message", "type", "param", "code"}
    assert (raised.value.body["type"], raised.value.code) == ("invalid_request_error", "not_found")
    stored = await client.responses.create(model=model, input="still here")
    assert (await client.responses.retrieve(stored.id)).id == stored.id


async def test_an_unknown_query_parameter_is_a_400_on_every_route_and_changes_nothing(client, model, standins):
    conversation = await client.conversations.create()
    kept = await client.responses.create(model=model, input="kept", conversation=conversation.id)
    asked = len(standins.requests())
    odd = {"extra_query": {"foo": "1"}}
    calls = [
        client.responses.create(model=model, input="not stored", conversation=conversation.id, **odd),
        client.responses.delete(kept.id, **odd),
        client.responses.input_tokens.count(model=model, input="x", **odd),
        client.responses.compact(model=model, extra_body={"conversation": conversation.id}, **odd),
        client.models.list(**odd),
        client.models.retrieve(model, **odd),
    ]
    for call in calls:
        with pytest.raises(openai.BadRequestError) as raised:
            await call
        assert (raised.value.code, raised.value.param) == ("unknown_parameter", "foo")
    assert len(standins.requests()) == asked  # the model was not asked
    assert (await client.responses.retrieve(kept.id)).id == kept.id  # not deleted
    items = await client.conversations.items.list(conversation.id)
    assert len(items.data) == 2  # the one turn: nothing stored, nothing compacted
    # The host's `code` (a function key outside a header) is no parameter of ours.
    assert (await client.models.retrieve(model, extra_query={"code": "key"})).id == model
