# ruff: noqa: E402 (the documented block brings its own imports, after the arguments are read)
"""Pydantic AI's OpenAIResponsesModel (pydantic-ai-slim[openai]), unchanged, against the
OpenAI-compatible door.

Usage: python pydantic_ai_responses.py <base URL, e.g. http://127.0.0.1:7071/api/v1> <model>
Prints one JSON document of what the framework returned; the test asserts on it.
"""

import json
import sys

from openai import OpenAI

base_url, model = sys.argv[1], sys.argv[2]

# docs: pydantic-ai
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIResponsesModel, OpenAIResponsesModelSettings
from pydantic_ai.providers.openai import OpenAIProvider

agent = Agent(
    OpenAIResponsesModel(model, provider=OpenAIProvider(base_url=base_url, api_key="unused")),
    instructions="Pydantic AI instructions: answer briefly.",
    # Each request continues the last response by its ID and sends only what is new.
    model_settings=OpenAIResponsesModelSettings(openai_previous_response_id="auto"),
)


@agent.tool_plain
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"snow in {city}"


first = agent.run_sync("pydantic one")
second = agent.run_sync("pydantic two", message_history=first.all_messages())
with agent.run_stream_sync("pydantic streamed", message_history=second.all_messages()) as streamed:
    deltas = list(streamed.stream_text(delta=True))
    streamed_output = streamed.get_output()

# The model calls the tool; the agent runs it and sends its output back.
tool = agent.run_sync('[[tool:get_weather {"city": "Oslo"}]] pydantic weather?')
# end docs

client = OpenAI(base_url=base_url, api_key="unused")
# What Pydantic AI sent with the second turn and with the tool's output: only what was new.
sent = client.responses.input_items.list(second.response.provider_response_id)
tool_sent = client.responses.input_items.list(tool.response.provider_response_id)
# The usage the model reported, cached and reasoning tokens included, as the agent counts it.
usage = agent.run_sync("[[cached:3]] [[reasoning:5]] pydantic usage").usage()
# A typed answer: NativeOutput sends the output type's JSON schema as text.format.
from pydantic import BaseModel
from pydantic_ai import NativeOutput


class Forecast(BaseModel):
    city: str
    days: int


typed_agent = Agent(
    OpenAIResponsesModel(model, provider=OpenAIProvider(base_url=base_url, api_key="unused")),
    output_type=NativeOutput(Forecast),
)
typed = typed_agent.run_sync("typed-pai forecast").output
print(
    json.dumps(
        {
            "deltas": deltas,
            "chain": [first.output, second.output, streamed_output],
            "sent": [item.content[0].text for item in sent.data],
            "tool": tool.output,
            "tool_parts": [part.part_kind for message in tool.new_messages() for part in message.parts],
            "tool_sent": [item.type for item in tool_sent.data],
            "typed": typed.model_dump(),
            "usage": {
                "input": usage.input_tokens,
                "output": usage.output_tokens,
                "cache_read": usage.cache_read_tokens,
                "details": usage.details,
            },
        }
    )
)
