"""Counting a request's input and compacting a window, through the official openai SDK against the
served app: POST /v1/responses/input_tokens, POST /v1/responses/compact, and context_management on
a response; what the model stand-in is then sent; compaction items as OpenAI describes them."""

from __future__ import annotations

import json

import openai
import pytest
from openai import AsyncOpenAI

from chat.engine.tokens import estimate_tokens
from tests.support.openai_schema import OpenAIDescription
from tests.support.prompts import prompt_of
from tests.support.servers import AppServer, app_env

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

FACT = "My locker code is 7391."
SUMMARY = "Summary of the conversation so far:\n"


@pytest.fixture(scope="module")
def small_server(standins, azurite):
    """The app with a history budget of 400 estimated tokens: a few short turns fill it."""
    env = app_env(standins, azurite.connection_string, CHAT_HISTORY_TOKEN_BUDGET="400")
    instance = AppServer(env).start()
    yield instance
    instance.stop()


@pytest.fixture
async def small(small_server):
    async with AsyncOpenAI(base_url=f"{small_server.url}/api/v1", api_key="unused-here", max_retries=0) as sdk:
        yield sdk


async def _turns(client, model, conversation_id: str, texts: list[str], **options) -> list:
    return [await client.responses.create(model=model, input=t, conversation=conversation_id, **options) for t in texts]


def _summary_in(messages: list[dict]) -> str:
    found = [m["content"] for m in messages if m["role"] == "assistant" and m["content"].startswith(SUMMARY)]
    assert len(found) == 1, messages
    return found[0]


async def test_input_tokens_count_the_input_and_the_conversation_without_asking_the_model(client, model, standins):
    raw = await client.responses.input_tokens.with_raw_response.count(model=model, input="How many tokens is this?")
    description = OpenAIDescription()
    description.validate(
        "TokenCountsResource", json.loads(raw.content)
    )  # OpenAI's answer of POST /responses/input_tokens
    alone = raw.parse()
    assert alone.object == "response.input_tokens" and alone.input_tokens > estimate_tokens("How many tokens is this?")
    conversation = await client.conversations.create(
        items=[
            {"type": "message", "role": "user", "content": FACT},
            {"type": "message", "role": "assistant", "content": "Noted."},
        ]
    )
    asked = len(standins.requests())
    counted = await client.responses.input_tokens.count(
        model=model, input="How many tokens is this?", conversation=conversation.id
    )
    assert counted.input_tokens == alone.input_tokens + estimate_tokens(FACT) + estimate_tokens("Noted.")
    tool = {"type": "function", "name": "lookup", "description": "Look it up.", "parameters": {"type": "object"}}
    with_tool = await client.responses.input_tokens.count(model=model, input="How many tokens is this?", tools=[tool])
    assert with_tool.input_tokens > alone.input_tokens
    assert len(standins.requests()) == asked  # the model was not asked
    items = await client.conversations.items.list(conversation.id)
    assert len(items.data) == 2  # nothing was stored


async def test_a_compacted_conversation_sends_the_summary_and_only_the_turns_after_it(client, model, standins):
    conversation = await client.conversations.create()
    await _turns(client, model, conversation.id, [FACT] + [f"Filler turn {n}." for n in range(2, 31)])
    raw = await client.responses.with_raw_response.compact(model=model, extra_body={"conversation": conversation.id})
    description = OpenAIDescription()
    # OpenAI's answer of POST /responses/compact (its path template reads as /responses/{response_id} here).
    description.validate("CompactResource", json.loads(raw.content))
    compacted = raw.parse()
    assert compacted.object == "response.compaction" and compacted.usage.total_tokens > 0
    [item] = compacted.output
    assert item.type == "compaction" and item.encrypted_content.startswith("cmp1.")

    await client.responses.create(model=model, input="What is my locker code?", conversation=conversation.id)
    sent = prompt_of(standins, "What is my locker code?")
    assert FACT in _summary_in(sent) and "Filler turn 30." in _summary_in(sent)
    assert [m["role"] for m in sent] == ["system", "assistant", "user"]
    await client.responses.create(model=model, input="And after that?", conversation=conversation.id)
    sent = prompt_of(standins, "And after that?")
    assert [m["content"] for m in sent[2:]] == [
        "What is my locker code?",
        "Echo #1: What is my locker code?",
        "And after that?",
    ]

    items = [i async for i in client.conversations.items.list(conversation.id, order="desc", limit=5)]
    assert [i.type for i in items][:5] == ["message", "message", "message", "message", "compaction"]


async def test_a_conversations_compaction_and_its_input_are_found_by_item_reference(client, model, standins):
    conversation = await client.conversations.create()
    await _turns(client, model, conversation.id, [FACT])
    compacted = await client.responses.compact(
        model=model, input="Compact this too.", extra_body={"conversation": conversation.id}
    )
    [made] = compacted.output
    stored = (await client.conversations.items.list(conversation.id, order="desc", limit=2)).data
    assert [i.id for i in stored] == [made.id, stored[1].id] and stored[1].type == "message"
    # Elsewhere (no conversation), by ID alone: the summary and the compacted input are sent.
    await client.responses.create(
        model=model,
        input=[
            {"type": "item_reference", "id": made.id},
            {"type": "item_reference", "id": stored[1].id},
            {"role": "user", "content": "Referenced: my code?"},
        ],
    )
    sent = prompt_of(standins, "Referenced: my code?")
    assert FACT in _summary_in(sent)
    assert [m["content"] for m in sent[-2:]] == ["Compact this too.", "Referenced: my code?"]


async def test_a_compactions_instructions_and_prompt_cache_key_reach_the_model_that_summarises(client, model, standins):
    await client.responses.compact(
        model=model,
        input="Compact with my instructions.",
        instructions="Keep every number.",
        prompt_cache_key="tenant-7",
    )
    [summary_request] = [
        entry["body"]
        for entry in standins.requests()
        if "Compact with my instructions." in json.dumps(entry["body"]["messages"])
    ]
    assert summary_request["prompt_cache_key"] == "tenant-7"
    messages = summary_request["messages"]
    assert [m["role"] for m in messages] == ["system", "system", "user"]
    assert messages[1]["content"] == "Keep every number."


async def test_context_management_compacts_when_the_window_crosses_the_threshold(client, model, standins):
    conversation = await client.conversations.create()
    await _turns(client, model, conversation.id, [FACT, "Second turn.", "Third turn."])
    response = await client.responses.create(
        model=model,
        input="Fourth turn.",
        conversation=conversation.id,
        context_management=[{"type": "compaction", "compact_threshold": 40}],
    )
    assert [o.type for o in response.output] == ["compaction", "message"]
    sent = prompt_of(standins, "Fourth turn.")
    assert FACT in _summary_in(sent) and sent[-1]["content"] == "Fourth turn."
    assert len(sent) == 3  # the system prompt, the summary, the new input

    again = json.loads((await client.responses.with_raw_response.retrieve(response.id)).content)
    assert [o["type"] for o in again["output"]] == ["compaction", "message"]
    description = OpenAIDescription()
    description.validate("Response", again)
    raw = await client.conversations.items.with_raw_response.retrieve(
        response.output[0].id, conversation_id=conversation.id
    )
    found = json.loads(raw.content)
    assert found["type"] == "compaction"
    path = f"/conversations/{conversation.id}/items/{found['id']}"
    description.validate(description.answer_schema(path, "GET", 200, "application/json"), found)

    # Streamed: the compaction is the first output item.
    stream = await client.responses.create(
        model=model,
        input="Fifth turn.",
        conversation=conversation.id,
        context_management=[{"type": "compaction", "compact_threshold": 20}],
        stream=True,
    )
    events = [event async for event in stream]
    added = [e.item.type for e in events if e.type == "response.output_item.added"]
    assert added == ["compaction", "message"] and events[-1].type == "response.completed"
    for event in events:
        description.validate_event(event.model_dump(mode="json", exclude_unset=True))


async def test_a_fact_of_turn_one_survives_compaction_where_truncation_drops_it(small, model, standins):
    plain = await small.conversations.create()
    kept = await small.conversations.create()
    fillers = [f"Here is filler sentence number {n}, which says nothing." for n in range(2, 12)]
    await _turns(small, model, plain.id, [FACT, *fillers])
    await _turns(
        small, model, kept.id, [FACT, *fillers], context_management=[{"type": "compaction", "compact_threshold": 150}]
    )
    await small.responses.create(model=model, input="Plain: what is my locker code?", conversation=plain.id)
    await small.responses.create(model=model, input="Kept: what is my locker code?", conversation=kept.id)
    assert not any(FACT in (m.get("content") or "") for m in prompt_of(standins, "Plain: what is my locker code?"))
    assert FACT in _summary_in(prompt_of(standins, "Kept: what is my locker code?"))


async def test_a_compaction_sent_back_as_input_is_used_in_its_place(client, model, standins):
    compacted = await client.responses.compact(
        model=model,
        input=[{"role": "user", "content": FACT}, {"role": "assistant", "content": "Noted."}],
    )
    item = compacted.output[0].model_dump(exclude_none=True)
    await client.responses.create(
        model=model, input=[item, {"role": "user", "content": "Stateless: my code?"}], store=False
    )
    sent = prompt_of(standins, "Stateless: my code?")
    assert FACT in _summary_in(sent) and len(sent) == 3

    # A chain's window compacted: nothing is stored, and the item goes on as input.
    first = await client.responses.create(model=model, input=FACT)
    chained = await client.responses.compact(model=model, previous_response_id=first.id)
    item = chained.output[0].model_dump(exclude_none=True)
    await client.responses.create(model=model, input=[item, {"role": "user", "content": "Chained: my code?"}])
    sent = prompt_of(standins, "Chained: my code?")
    assert FACT in _summary_in(sent) and len(sent) == 3
    await client.responses.create(model=model, input="Chain goes on.", previous_response_id=first.id)
    sent = prompt_of(standins, "Chain goes on.")
    assert [m["content"] for m in sent[1:]] == [
        FACT,
        f"Echo #0: {FACT}",
        "Chain goes on.",
    ]  # the chain holds no compaction


async def test_bad_compactions_and_counts_are_400s_naming_the_parameter_and_store_nothing(client, model, standins):
    conversation = await client.conversations.create()
    asked = len(standins.requests())
    forged = {"type": "compaction", "encrypted_content": "cmp1.bm90IG1pbmU.0000"}
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(
            model=model, input=[forged, {"role": "user", "content": "hi"}], conversation=conversation.id
        )
    assert caught.value.body["param"] == "input[0].encrypted_content"
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(
            model=model, input="hi", conversation=conversation.id, context_management=[{"type": "other"}]
        )
    assert caught.value.body["param"].startswith("context_management[0]")
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.input_tokens.count(
            model=model, input="hi", conversation=conversation.id, previous_response_id="resp_x"
        )
    assert caught.value.body["param"] == "conversation"
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.compact(model=model, extra_body={"conversation": conversation.id})
    assert caught.value.body["code"] == "nothing_to_compact"
    with pytest.raises(openai.BadRequestError) as caught:  # an empty string is no input either
        await client.responses.compact(model=model, input="", extra_body={"conversation": conversation.id})
    assert caught.value.body["code"] == "nothing_to_compact"
    with pytest.raises(openai.NotFoundError):
        await client.responses.compact(model=model, extra_body={"conversation": "conv_" + "0" * 48})
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.input_tokens.count(
            model=model, input="hi", extra_body={"text": {"format": {"type": "json_object"}}}
        )
    assert caught.value.body["param"] == "text"
    for path in ("/responses/compact", "/responses/input_tokens"):
        with pytest.raises(openai.APIStatusError) as caught:
            await client.get(path, cast_to=object)
        assert caught.value.status_code == 405
    assert len(standins.requests()) == asked
    assert (await client.conversations.items.list(conversation.id)).data == []


PROSE = (
    "The committee met on Tuesday to review the budget for next year. After a long discussion about "
    "travel costs, the members agreed to hold two of the four regional meetings online, and asked the "
    "treasurer to prepare a revised plan before the end of the month."
)


async def test_the_count_is_at_least_what_the_model_stand_in_counts(client, model):
    """The count against the usage the model (here the stand-in, a quarter of the characters a
    message) reports for the same request; benchmarks/token_estimate.py measures it against o200k_base."""
    for text in (PROSE, "短い日本語の文です。" * 20, "x = [i * i for i in range(10)]\n" * 10):
        counted = await client.responses.input_tokens.count(model=model, input=text)
        answered = await client.responses.create(model=model, input=text, store=False)
        assert answered.usage is not None
        assert counted.input_tokens >= answered.usage.input_tokens
