"""The model client's output limit, through the real openai SDK against the model stand-in:
`max_completion_tokens`, and `max_tokens` only for an endpoint that does not know the former."""

from __future__ import annotations

import json

import pytest
from azure.identity.aio import ManagedIdentityCredential

from chat.dependencies import model_client
from chat.engine.errors import ModelUnavailable
from chat.engine.items import FunctionCall, function_call_output, message
from chat.engine.model import ArgumentsDelta, Finished, FunctionTool, ItemStarted, ModelRequest, TextDelta
from chat.settings import Settings
from chat.upstream.model import ModelClient, has_developer_role
from standins.completion import REFUSAL

pytestmark = pytest.mark.anyio

HELLO = (message("user", "one two three four"),)  # an answer of 6 tokens


def ask(limit: int | None = None) -> ModelRequest:
    return ModelRequest(system_prompt="You are the test assistant.", items=HELLO, max_output_tokens=limit)


@pytest.fixture
async def client_for(standins, monkeypatch):
    """A ModelClient as the app builds it, keyless, for an Azure OpenAI API version."""
    monkeypatch.setenv("IDENTITY_ENDPOINT", standins.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", standins.identity_header)
    made: list[tuple[ModelClient, ManagedIdentityCredential]] = []

    def build(api_version: str) -> ModelClient:
        settings = Settings.from_env(
            {
                "AZURE_OPENAI_ENDPOINT": standins.model_url,
                "AZURE_OPENAI_CHAT_DEPLOYMENT": standins.deployment,
                "AZURE_OPENAI_API_VERSION": api_version,
                "CHAT_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",  # not reached
                "CHAT_MODEL_MAX_RETRIES": "0",
            }
        )
        credential = ManagedIdentityCredential()
        client = model_client(settings, credential)
        made.append((client, credential))
        return client

    yield build
    for client, credential in made:
        await client.close()
        await credential.close()


def sent_limits(requests: list[dict]) -> list[dict[str, int]]:
    return [
        {k: v for k, v in request["body"].items() if k in ("max_completion_tokens", "max_tokens")}
        for request in requests
    ]


async def test_the_limit_goes_as_max_completion_tokens_and_only_when_asked(client_for, standins):
    client = client_for("2024-10-21")
    before = len(standins.requests())
    capped = await client.complete(ask(2))
    uncapped = await client.complete(ask())
    assert (capped.text, capped.finish_reason, capped.usage.completion_tokens) == ("Echo #0:", "length", 2)
    assert uncapped.finish_reason == "stop"
    assert sent_limits(standins.requests()[before:]) == [{"max_completion_tokens": 2}, {}]


async def test_an_api_version_without_max_completion_tokens_gets_max_tokens_from_then_on(client_for, standins):
    client = client_for("2024-06-01")
    before = len(standins.requests())
    first = await client.complete(ask(3))
    events = [event async for event in await client.stream(ask(3))]
    assert first.text == "Echo #0: one" and first.finish_reason == "length"
    assert isinstance(events[-1], Finished) and events[-1].completion.finish_reason == "length"
    assert sent_limits(standins.requests()[before:]) == [
        {"max_completion_tokens": 3},  # refused: 400
        {"max_tokens": 3},
        {"max_tokens": 3},
    ]


async def test_a_limit_over_the_models_own_is_an_error_not_a_switch_to_max_tokens(client_for, standins):
    client = client_for("2024-10-21")
    before = len(standins.requests())
    with pytest.raises(ModelUnavailable) as caught:
        await client.complete(ask(20_000))
    assert caught.value.code == "model_rejected_request"
    await client.complete(ask(5))
    assert sent_limits(standins.requests()[before:]) == [
        {"max_completion_tokens": 20_000},
        {"max_completion_tokens": 5},
    ]


WEATHER = FunctionTool(
    name="get_weather",
    description="The weather in a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
ASK_WEATHER = message("user", 'Weather in Oslo? [[tool:get_weather {"city": "Oslo"}]]')


def with_tools(*items) -> ModelRequest:
    return ModelRequest(system_prompt="You are the test assistant.", items=items, tools=(WEATHER,))


async def test_a_tool_call_comes_back_as_a_function_call_item_and_its_output_reaches_the_model(client_for, standins):
    client = client_for("2024-10-21")
    answer = await client.complete(with_tools(ASK_WEATHER))
    [call] = answer.outputs
    assert isinstance(call, FunctionCall) and answer.finish_reason == "tool_calls"
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Oslo"})
    assert call.call_id.startswith("call_") and call.id.startswith("fc_")

    followed = await client.complete(with_tools(ASK_WEATHER, call, function_call_output(call.call_id, "-3 C")))
    assert followed.text == "Tool result: -3 C"
    sent = standins.requests()[-1]["body"]["messages"]
    assert sent[-2]["tool_calls"][0]["id"] == call.call_id and sent[-1] == {
        "role": "tool",
        "tool_call_id": call.call_id,
        "content": "-3 C",
    }
    assert standins.requests()[-1]["body"]["tools"][0]["function"]["name"] == "get_weather"


async def test_a_streamed_tool_call_arrives_as_argument_deltas_and_one_function_call_item(client_for):
    client = client_for("2024-10-21")
    events = [event async for event in await client.stream(with_tools(ASK_WEATHER))]
    started = [e for e in events if isinstance(e, ItemStarted)]
    deltas = [e for e in events if isinstance(e, ArgumentsDelta)]
    assert len(started) == 1 and isinstance(started[0].item, FunctionCall)
    assert len(deltas) > 1 and all(d.item_id == started[0].item.id for d in deltas)
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.completion.finish_reason == "tool_calls"
    [call] = finished.completion.outputs
    assert isinstance(call, FunctionCall) and call.id == started[0].item.id
    assert json.loads("".join(d.delta for d in deltas)) == json.loads(call.arguments) == {"city": "Oslo"}


async def test_two_calls_at_once_are_two_items_in_order(client_for):
    client = client_for("2024-10-21")
    both = message("user", 'Both [[tool:get_weather {"city": "Oslo"}]] [[tool:get_weather {"city": "Rome"}]]')
    answer = await client.complete(with_tools(both))
    assert [json.loads(c.arguments)["city"] for c in answer.outputs] == ["Oslo", "Rome"]
    events = [event async for event in await client.stream(with_tools(both))]
    assert [json.loads(c.arguments)["city"] for c in events[-1].completion.outputs] == ["Oslo", "Rome"]


async def test_a_refusal_is_a_refusal_message_json_and_streamed_and_goes_back_as_one(client_for, standins):
    client = client_for("2024-10-21")
    ask_bad = message("user", "Something bad [[refuse]]")
    request = ModelRequest(system_prompt="You are the test assistant.", items=(ask_bad,))
    answer = await client.complete(request)
    [refused] = answer.outputs
    assert (refused.role, refused.text, refused.refusal, answer.finish_reason) == ("assistant", REFUSAL, True, "stop")

    events = [event async for event in await client.stream(request)]
    [started] = [e for e in events if isinstance(e, ItemStarted)]
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert started.item.refusal and started.item.text == ""
    assert len(deltas) > 1 and {d.item_id for d in deltas} == {started.item.id}
    assert "".join(d.text for d in deltas) == REFUSAL
    [streamed] = events[-1].completion.outputs
    assert (streamed.id, streamed.text, streamed.refusal) == (started.item.id, REFUSAL, True)

    again = message("user", "Something good")
    followed = await client.complete(ModelRequest(system_prompt="sys", items=(ask_bad, streamed, again)))
    assert followed.text == "Echo #2: Something good" and not followed.outputs[0].refusal
    assert standins.requests()[-1]["body"]["messages"][2] == {"role": "assistant", "refusal": REFUSAL}


@pytest.mark.parametrize(
    ("version", "developer"),
    [("2024-10-21", False), ("2024-12-01-preview", True), ("2025-04-01-preview", True), ("2024-06-01", False)],
)
def test_the_developer_role_goes_to_api_versions_that_have_it(version, developer):
    assert has_developer_role(version) is developer
