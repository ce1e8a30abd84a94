# ruff: noqa: E402 (the documented block brings its own imports, after the arguments are read)
"""OpenAI's Agents SDK (openai-agents), unchanged, against the OpenAI-compatible door.

Usage: python openai_agents.py <base URL, e.g. http://127.0.0.1:7071/api/v1> <model>
Prints one JSON document of what the framework returned; the test asserts on it.
"""

import asyncio
import json
import sys

base_url, model = sys.argv[1], sys.argv[2]
# A tiny PNG (its signature and a few bytes), as a data URL: what the image tool returns.
SCREENSHOT = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB"

# docs: openai-agents
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

set_tracing_disabled(True)
client = AsyncOpenAI(base_url=base_url, api_key="unused")


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"snow in {city}"


agent = Agent(
    name="Assistant",
    instructions="Agents SDK instructions: answer briefly.",
    model=OpenAIResponsesModel(model=model, openai_client=client),
    tools=[get_weather],
)


async def main() -> dict:
    # History kept by the server, chained by previous_response_id ...
    first = await Runner.run(agent, "agents-py one")
    second = await Runner.run(agent, "agents-py two", previous_response_id=first.last_response_id)
    streamed = Runner.run_streamed(agent, "agents-py streamed", previous_response_id=second.last_response_id)
    deltas = []
    async for event in streamed.stream_events():
        if event.type == "raw_response_event" and event.data.type == "response.output_text.delta":
            deltas.append(event.data.delta)
    # ... or in a conversation.
    conversation = await client.conversations.create()
    third = await Runner.run(agent, "agents-py three", conversation_id=conversation.id)
    fourth = await Runner.run(agent, "agents-py four", conversation_id=conversation.id)
    # The model calls the tool, the SDK runs it and sends its output back.
    tool = await Runner.run(agent, '[[tool:get_weather {"city": "Oslo"}]] agents-py weather?')
    # end docs
    # A model that refuses: the SDK raises its ModelRefusalError with the refusal's text.
    from agents import ModelRefusalError

    try:
        await Runner.run(agent, "[[refuse]] a question the SDK sees refused")
        refusal = None
    except ModelRefusalError as error:
        refusal = error.refusal
    # A tool that returns an image (ToolOutputImage): the SDK sends it back as an input_image part
    # of the call's output.
    from agents import ToolOutputImage

    @function_tool
    def screenshot() -> ToolOutputImage:
        """A screenshot of the page."""
        return ToolOutputImage(image_url=SCREENSHOT, detail="low")

    looker = Agent(name="Looker", model=OpenAIResponsesModel(model=model, openai_client=client), tools=[screenshot])
    looked = await Runner.run(looker, "[[tool:screenshot {}]] agents-image screenshot")
    looked_inputs = await client.responses.input_items.list(looked.last_response_id)
    # A typed answer (output_type: the SDK sends its JSON schema as text.format), with a reasoning effort.
    from agents import ModelSettings
    from openai.types.shared import Reasoning
    from pydantic import BaseModel

    class Forecast(BaseModel):
        city: str
        days: int

    typed_agent = Agent(
        name="Forecaster",
        model=OpenAIResponsesModel(model=model, openai_client=client),
        output_type=Forecast,
        model_settings=ModelSettings(reasoning=Reasoning(effort="low")),
    )
    typed = await Runner.run(typed_agent, "typed-py forecast")
    typed_streamed = Runner.run_streamed(typed_agent, "typed-py streamed")
    async for _ in typed_streamed.stream_events():
        pass
    # What the SDK sent with each second turn: the new message alone, the history is the server's.
    sent = [await client.responses.input_items.list(result.last_response_id) for result in (second, fourth)]
    items = await client.conversations.items.list(conversation.id, order="asc")
    return {
        "sent": [[item.content[0].text for item in page.data] for page in sent],
        "deltas": deltas,
        "chain": [first.final_output, second.final_output, streamed.final_output],
        "conversation": [third.final_output, fourth.final_output],
        "conversation_items": [item.type for item in items.data],
        "tool": tool.final_output,
        "tool_items": [item.type for item in tool.new_items],
        "refusal": refusal,
        "typed": [typed.final_output.model_dump(), typed_streamed.final_output.model_dump()],
        "typed_usage": typed.context_wrapper.usage.output_tokens_details.reasoning_tokens,
        "looked": looked.final_output,
        "looked_items": [item.type for item in looked.new_items],
        "looked_output": [item.model_dump(exclude_none=True) for item in looked_inputs.data[0].output],
        "screenshot": SCREENSHOT,
    }


print(json.dumps(asyncio.run(main())))
