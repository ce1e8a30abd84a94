"""Agent frameworks, unchanged and set up as their own documentation shows, drive the
OpenAI-compatible door (Responses API) of the served app, on Azurite and the model stand-in.

Each framework runs in a process of its own that can reach loopback addresses only: the Python ones
in `.venv-frameworks` (their openai pins differ from the app's; scripts/test installs it from
requirements-frameworks.txt) under tests/support/loopback_only.py, the JavaScript ones with node from
node_modules under tests/frameworks/loopback_only.mjs. A script per framework under
tests/frameworks/ takes the base URL and the model and prints one JSON document of what the
framework returned. Its `# docs:` ... `# end docs` block is the snippet docs/openai-compatible.md
shows, word for word.

What each test shows: a second turn sees the first though the framework sent only the new
message (the echo model answers `Echo #N`, N the earlier messages it was sent; `input_items`
shows what the client sent); the framework's own function tool is called, run and answered; the
framework's instructions reach the model right after the server's system prompt; a tool that
returns an image has it sent to the model after the call's tool message; a typed answer
(the framework's structured output) comes back parsed, and the model was sent its JSON schema.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from standins.completion import REFUSAL
from standins.formats import REASONING_TOKENS
from tests.support.frameworks import (
    assert_instructions_follow_the_system_prompt,
    assert_schema_sent,
    assert_tool_answer_sent_back,
    assert_tool_image_sent,
    doc_snippet,
    model_requests,
    run_script,
    script_block,
)

pytestmark = pytest.mark.e2e


# openai-agents: Agent + Runner with OpenAIResponsesModel on our base URL.


@pytest.fixture(scope="module")
def openai_agents(server, standins) -> dict[str, Any]:
    return run_script("openai_agents.py", server, standins)


def test_openai_agents_keeps_history_on_the_server(openai_agents):
    assert openai_agents["chain"] == ["Echo #0: agents-py one", "Echo #2: agents-py two", "Echo #4: agents-py streamed"]
    assert "".join(openai_agents["deltas"]) == "Echo #4: agents-py streamed" and len(openai_agents["deltas"]) > 1
    assert openai_agents["conversation"] == ["Echo #0: agents-py three", "Echo #2: agents-py four"]
    assert openai_agents["sent"] == [["agents-py two"], ["agents-py four"]]
    assert openai_agents["conversation_items"] == ["message"] * 4


def test_openai_agents_runs_its_function_tool(openai_agents, standins):
    assert openai_agents["tool"] == "Tool result: snow in Oslo"
    assert openai_agents["tool_items"] == ["tool_call_item", "tool_call_output_item", "message_output_item"]
    asked, answered = model_requests(standins, "agents-py weather")
    assert_tool_answer_sent_back(asked, answered, "snow in Oslo")


def test_openai_agents_tool_that_returns_an_image_has_it_sent_to_the_model(openai_agents, standins):
    image = {"type": "image_url", "image_url": {"url": openai_agents["screenshot"], "detail": "low"}}
    assert openai_agents["looked_items"] == ["tool_call_item", "tool_call_output_item", "message_output_item"]
    assert openai_agents["looked_output"] == [
        {"type": "input_image", "image_url": openai_agents["screenshot"], "detail": "low"}
    ]
    assert_tool_image_sent(standins, "agents-image", image, openai_agents["looked"])


def test_openai_agents_raises_its_refusal_error_with_the_models_refusal(openai_agents):
    assert openai_agents["refusal"] == REFUSAL


def test_openai_agents_instructions_reach_the_model(openai_agents, standins):
    requests = model_requests(standins, "agents-py")
    assert len(requests) == 7
    assert_instructions_follow_the_system_prompt(requests, "Agents SDK instructions: answer briefly.")


def test_openai_agents_output_type_and_reasoning_effort(openai_agents, standins):
    assert openai_agents["typed"] == [
        {"city": "Echo #0: typed-py forecast", "days": 1},
        {"city": "Echo #0: typed-py streamed", "days": 1},
    ]
    assert openai_agents["typed_usage"] == REASONING_TOKENS["low"]
    sent = [entry["body"] for entry in model_requests(standins, "typed-py")]
    assert [body["reasoning_effort"] for body in sent] == ["low", "low"]
    assert_schema_sent(sent, "final_output", {"city", "days"})


def test_openai_agents_snippet_is_the_one_documented():
    assert doc_snippet("openai-agents") == script_block("openai_agents.py", "#")


# langchain-openai: ChatOpenAI on the Responses API, with previous_response_id.


@pytest.fixture(scope="module")
def langchain(server, standins) -> dict[str, Any]:
    return run_script("langchain_openai_responses.py", server, standins)


def test_langchain_keeps_history_on_the_server(langchain):
    assert langchain["chain"] == ["Echo #0: langchain one", "Echo #2: langchain two", "Echo #4: langchain streamed"]
    assert "".join(langchain["deltas"]) == "Echo #4: langchain streamed" and len(langchain["deltas"]) > 1
    assert langchain["sent"] == ["langchain two"]


def test_langchain_runs_its_function_tool(langchain, standins):
    assert langchain["tool_calls"] == [{"name": "get_weather", "args": {"city": "Oslo"}}]
    assert langchain["tool"] == "Tool result: snow in Oslo"
    assert langchain["tool_sent"] == ["function_call_output"]
    asked, answered = model_requests(standins, "langchain weather")
    assert_tool_answer_sent_back(asked, answered, "snow in Oslo")


def test_langchain_tool_that_returns_an_image_has_it_sent_to_the_model(langchain, standins):
    image = {"type": "image_url", "image_url": {"url": langchain["screenshot"], "detail": "auto"}}
    assert langchain["screened_output"] == [
        {"type": "input_image", "image_url": langchain["screenshot"], "detail": "auto"}
    ]
    assert_tool_image_sent(standins, "lc-image", image, langchain["screened"])


def test_langchain_resending_its_whole_history_is_stored_whole(langchain, standins):
    """More messages than one Table transaction holds: stored through a blob, every one kept."""
    assert langchain["long"] == "Echo #120: langchain long"
    expected = [text for n in range(60) for text in (f"long question {n}", f"long answer {n}")] + ["langchain long"]
    assert langchain["long_sent"] == expected


def test_langchain_sends_an_image_and_a_pdf_as_its_docs_show_and_they_reach_the_model(langchain, standins):
    assert langchain["image"] == "Echo #0: langchain image: what is this?"
    kinds = [(part["type"], part.get("detail")) for part in langchain["image_parts"]]
    assert kinds == [("input_text", None), ("input_image", "auto"), ("input_image", "auto"), ("input_file", None)]
    assert langchain["image_parts"][3]["file_data"] == "data:application/pdf;base64,JVBERi0xLjQK"
    [entry] = [e for e in standins.requests() if "langchain image" in json.dumps(e["body"]["messages"])]
    parts = entry["body"]["messages"][-1]["content"]
    assert [part["type"] for part in parts] == ["text", "image_url", "image_url", "file"]
    assert parts[2]["image_url"]["url"] == "https://example.com/cat.png"


def test_langchain_gives_the_models_refusal_as_a_refusal_block(langchain):
    assert [block["refusal"] for block in langchain["refusal"]] == [REFUSAL]


def test_langchain_system_message_reaches_the_model(langchain, standins):
    requests = model_requests(standins, "langchain")
    assert len(requests) == 5
    assert_instructions_follow_the_system_prompt(requests, "LangChain system prompt: answer briefly.")


def test_langchain_with_structured_output(langchain, standins):
    assert langchain["typed"] == {"city": "Echo #0: typed-lc forecast", "days": 1}
    assert_schema_sent([entry["body"] for entry in model_requests(standins, "typed-lc")], "Forecast", {"city", "days"})


def test_langchain_snippet_is_the_one_documented():
    assert doc_snippet("langchain-openai") == script_block("langchain_openai_responses.py", "#")


# pydantic-ai: OpenAIResponsesModel with an OpenAIProvider on our base URL.


@pytest.fixture(scope="module")
def pydantic_ai(server, standins) -> dict[str, Any]:
    return run_script("pydantic_ai_responses.py", server, standins)


def test_pydantic_ai_keeps_history_on_the_server(pydantic_ai):
    assert pydantic_ai["chain"] == ["Echo #0: pydantic one", "Echo #2: pydantic two", "Echo #4: pydantic streamed"]
    assert "".join(pydantic_ai["deltas"]) == "Echo #4: pydantic streamed"
    assert pydantic_ai["sent"] == ["pydantic two"]


def test_pydantic_ai_runs_its_function_tool(pydantic_ai, standins):
    assert pydantic_ai["tool"] == "Tool result: snow in Oslo"
    assert pydantic_ai["tool_parts"] == ["user-prompt", "tool-call", "tool-return", "text"]
    assert pydantic_ai["tool_sent"] == ["function_call_output"]
    asked, answered = model_requests(standins, "pydantic weather")
    assert_tool_answer_sent_back(asked, answered, "snow in Oslo")


def test_pydantic_ai_instructions_reach_the_model(pydantic_ai, standins):
    requests = model_requests(standins, "pydantic")
    assert len(requests) == 6
    assert_instructions_follow_the_system_prompt(requests, "Pydantic AI instructions: answer briefly.")


def test_pydantic_ai_counts_the_cached_and_reasoning_tokens_the_model_reported(pydantic_ai):
    """The stand-in reports 3 of the prompt's tokens cached and 5 spent reasoning; the door passes
    them on as `input_tokens_details` and `output_tokens_details`, and the agent counts them."""
    usage = pydantic_ai["usage"]
    assert usage["input"] > 3 and usage["output"] > 5, usage
    assert usage["cache_read"] == 3, usage
    assert usage["details"].get("reasoning_tokens") == 5, usage


def test_pydantic_ai_native_output(pydantic_ai, standins):
    assert pydantic_ai["typed"] == {"city": "Echo #0: typed-pai forecast", "days": 1}
    assert_schema_sent([entry["body"] for entry in model_requests(standins, "typed-pai")], "Forecast", {"city", "days"})


def test_pydantic_ai_snippet_is_the_one_documented():
    assert doc_snippet("pydantic-ai") == script_block("pydantic_ai_responses.py", "#")


# agent-framework-openai: Microsoft Agent Framework's Agent on its OpenAI Responses client.


@pytest.fixture(scope="module")
def agent_framework(server, standins) -> dict[str, Any]:
    return run_script("agent_framework_responses.py", server, standins)


def test_agent_framework_keeps_history_on_the_server(agent_framework):
    assert agent_framework["chain"] == ["Echo #0: maf one", "Echo #2: maf two", "Echo #4: maf streamed"]
    assert agent_framework["conversation"] == ["Echo #0: maf three", "Echo #2: maf four"]
    assert agent_framework["sent"] == [["maf two"], ["maf four"]]
    assert agent_framework["conversation_items"] == ["message"] * 4


def test_agent_framework_runs_its_function_tool(agent_framework, standins):
    assert agent_framework["tool"] == "Tool result: snow in Oslo"
    assert agent_framework["tool_contents"] == ["function_call", "function_result", "text"]
    assert agent_framework["tool_sent"] == ["function_call_output"]
    asked, answered = model_requests(standins, "maf weather")
    assert_tool_answer_sent_back(asked, answered, "snow in Oslo")


def test_agent_framework_instructions_reach_the_model(agent_framework, standins):
    requests = model_requests(standins, "maf")
    assert len(requests) == 7
    assert_instructions_follow_the_system_prompt(requests, "Agent Framework instructions: answer briefly.")


def test_agent_framework_response_format(agent_framework, standins):
    assert agent_framework["typed"] == {"city": "Echo #0: typed-af forecast", "days": 1}
    assert_schema_sent([entry["body"] for entry in model_requests(standins, "typed-af")], None, {"city", "days"})


def test_agent_framework_snippet_is_the_one_documented():
    assert doc_snippet("agent-framework") == script_block("agent_framework_responses.py", "#")


# The Vercel AI SDK: createOpenAI({baseURL}).responses(model) with generateText and streamText.


@pytest.fixture(scope="module")
def vercel_ai_sdk(server, standins) -> dict[str, Any]:
    return run_script("vercel_ai_sdk.mjs", server, standins)


def test_vercel_ai_sdk_keeps_history_on_the_server(vercel_ai_sdk):
    assert vercel_ai_sdk["chain"] == ["Echo #0: vercel one", "Echo #2: vercel two"]
    assert vercel_ai_sdk["streamed"] == "Echo #4: vercel three"
    assert vercel_ai_sdk["conversation"] == ["Echo #0: vercel four", "Echo #2: vercel five"]
    # Its system message is kept with each turn, as any input item is.
    roles = ["system", "user", "assistant"] * 2
    assert vercel_ai_sdk["conversation_items"] == [["message", role] for role in roles]
    # The SDK sends its system prompt as a system message with every turn, then the new message.
    assert vercel_ai_sdk["sent"] == ["Vercel AI SDK system prompt: answer briefly.", "vercel two"]


def test_vercel_ai_sdk_runs_its_function_tool(vercel_ai_sdk, standins):
    assert vercel_ai_sdk["tool_steps"] == [[["get_weather", {"city": "Oslo"}]], []]
    assert vercel_ai_sdk["tool_results"] == ["snow in Oslo"]
    assert vercel_ai_sdk["tool"] == "Tool result: snow in Oslo"
    asked, answered = model_requests(standins, "vercel weather")
    assert_tool_answer_sent_back(asked, answered, "snow in Oslo")


def test_vercel_ai_sdk_tool_whose_output_is_an_image_has_it_sent_to_the_model(vercel_ai_sdk, standins):
    screened = vercel_ai_sdk["screened"]
    assert "error" not in screened, screened
    assert screened["output"] == [{"type": "input_image", "image_url": screened["image"], "detail": "auto"}]
    image = {"type": "image_url", "image_url": {"url": screened["image"], "detail": "auto"}}
    assert_tool_image_sent(standins, "aisdk-image", image, screened["text"])


def test_vercel_ai_sdk_system_prompt_reaches_the_model(vercel_ai_sdk, standins):
    requests = model_requests(standins, "vercel")
    assert len(requests) == 7
    assert_instructions_follow_the_system_prompt(requests, "Vercel AI SDK system prompt: answer briefly.")


def test_vercel_ai_sdk_resending_its_messages_continues(vercel_ai_sdk):
    # From the second turn on the SDK sends each earlier answer as an `item_reference` to it.
    assert vercel_ai_sdk["history"] == {"texts": ["Echo #0: history one", "Echo #2: history two"]}


def test_vercel_ai_sdk_generate_object_and_output_object(vercel_ai_sdk, standins):
    assert vercel_ai_sdk["typed"] == [
        {"city": "Echo #0: typed-ai object", "days": 1},
        {"city": "Echo #0: typed-ai output", "days": 1},
    ]
    assert_schema_sent([entry["body"] for entry in model_requests(standins, "typed-ai")], None, {"city", "days"})


def test_vercel_ai_sdk_snippet_is_the_one_documented():
    assert doc_snippet("vercel-ai-sdk") == script_block("vercel_ai_sdk.mjs", "//")


# @openai/agents: the Agents SDK for JavaScript, on a default OpenAI client of our base URL.


@pytest.fixture(scope="module")
def openai_agents_js(server, standins) -> dict[str, Any]:
    return run_script("openai_agents_js.mjs", server, standins)


def test_openai_agents_js_keeps_history_on_the_server(openai_agents_js):
    assert openai_agents_js["chain"] == ["Echo #0: agents-js one", "Echo #2: agents-js two"]
    assert openai_agents_js["conversation"] == ["Echo #0: agents-js three", "Echo #2: agents-js four"]
    assert openai_agents_js["sent"] == [["agents-js two"], ["agents-js four"]]
    assert openai_agents_js["conversation_items"] == ["message"] * 4


def test_openai_agents_js_runs_its_function_tool(openai_agents_js, standins):
    assert openai_agents_js["tool"] == "Tool result: snow in Oslo"
    assert openai_agents_js["tool_items"] == ["tool_call_item", "tool_call_output_item", "message_output_item"]
    asked, answered = model_requests(standins, "agents-js weather")
    assert_tool_answer_sent_back(asked, answered, "snow in Oslo")


def test_openai_agents_js_instructions_reach_the_model(openai_agents_js, standins):
    requests = model_requests(standins, "agents-js")
    assert len(requests) == 6
    assert_instructions_follow_the_system_prompt(requests, "Agents SDK (JS) instructions: answer briefly.")


def test_openai_agents_js_output_type(openai_agents_js, standins):
    assert openai_agents_js["typed"] == {"city": "Echo #0: typed-js forecast", "days": 1}
    assert_schema_sent([entry["body"] for entry in model_requests(standins, "typed-js")], None, {"city", "days"})


def test_openai_agents_js_snippet_is_the_one_documented():
    assert doc_snippet("openai-agents-js") == script_block("openai_agents_js.mjs", "//")
