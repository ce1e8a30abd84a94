# ruff: noqa: E402 (the documented block brings its own imports, after the arguments are read)
"""Microsoft Agent Framework's OpenAI Responses client (agent-framework-openai), unchanged,
against the OpenAI-compatible door.

Usage: python agent_framework_responses.py <base URL, e.g. http://127.0.0.1:7071/api/v1> <model>
Prints one JSON document of what the framework returned; the test asserts on it.
"""

import asyncio
import json
import sys

base_url, model = sys.argv[1], sys.argv[2]

# docs: agent-framework
from agent_framework import Agent
from agent_framework.openai import OpenAIChatClient
from openai import AsyncOpenAI


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"snow in {city}"


agent = Agent(
    client=OpenAIChatClient(model=model, base_url=base_url, api_key="unused"),
    name="assistant",
    instructions="Agent Framework instructions: answer briefly.",
    tools=get_weather,
)
client = AsyncOpenAI(base_url=base_url, api_key="unused")  # for the Conversations API


async def main() -> dict:
    # The session holds the last response's ID: the history is the server's.
    session = agent.create_session()
    first = await agent.run("maf one", session=session)
    second = await agent.run("maf two", session=session)
    stream = agent.run("maf streamed", session=session, stream=True)
    streamed = await stream.get_final_response()
    # Or a conversation of the server's, by its ID.
    conversation = await client.conversations.create()
    in_conversation = agent.get_session(service_session_id=conversation.id)
    third = await agent.run("maf three", session=in_conversation)
    fourth = await agent.run("maf four", session=in_conversation)
    # The model calls the tool; the agent runs it and sends its output back.
    tool = await agent.run('[[tool:get_weather {"city": "Oslo"}]] maf weather?')
    # end docs
    # A typed answer: response_format sends the model's JSON schema as text.format.
    from pydantic import BaseModel

    class Forecast(BaseModel):
        city: str
        days: int

    typed = await agent.run("typed-af forecast", options={"response_format": Forecast})
    sent = [await client.responses.input_items.list(response.response_id) for response in (second, fourth)]
    items = await client.conversations.items.list(conversation.id, order="asc")
    tool_sent = await client.responses.input_items.list(tool.response_id)
    return {
        "chain": [first.text, second.text, streamed.text],
        "conversation": [third.text, fourth.text],
        "sent": [[item.content[0].text for item in page.data] for page in sent],
        "conversation_items": [item.type for item in items.data],
        "tool": tool.text,
        "tool_sent": [item.type for item in tool_sent.data],
        "tool_contents": [content.type for message in tool.messages for content in message.contents],
        "typed": typed.value.model_dump(),
    }


print(json.dumps(asyncio.run(main())))
