# ruff: noqa: E402 (the documented block brings its own imports, after the arguments are read)
"""LangChain's ChatOpenAI (langchain-openai) on the Responses API, unchanged, against the
OpenAI-compatible door.

Usage: python langchain_openai_responses.py <base URL, e.g. http://127.0.0.1:7071/api/v1> <model>
Prints one JSON document of what the framework returned; the test asserts on it.
"""

import json
import sys

from openai import OpenAI

base_url, model = sys.argv[1], sys.argv[2]

# docs: langchain-openai
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

llm = ChatOpenAI(
    model=model,
    base_url=base_url,
    api_key="unused",
    use_responses_api=True,
    use_previous_response_id=True,  # each call sends only what follows the last answer
)


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"snow in {city}"


llm_with_tools = llm.bind_tools([get_weather])

messages = [SystemMessage("LangChain system prompt: answer briefly."), HumanMessage("langchain one")]
messages.append(llm_with_tools.invoke(messages))
messages.append(HumanMessage("langchain two"))
messages.append(llm_with_tools.invoke(messages))
messages.append(HumanMessage("langchain streamed"))
streamed, deltas = None, []
for chunk in llm_with_tools.stream(messages):
    deltas.append(chunk.text)
    streamed = chunk if streamed is None else streamed + chunk
messages.append(streamed)

# The model calls the tool; LangChain runs it and sends its output back.
asking = [
    SystemMessage("LangChain system prompt: answer briefly."),
    HumanMessage('[[tool:get_weather {"city": "Oslo"}]] langchain weather?'),
]
asked = llm_with_tools.invoke(asking)
asking.append(asked)
for call in asked.tool_calls:
    asking.append(get_weather.invoke(call))
answered = llm_with_tools.invoke(asking)
# end docs

client = OpenAI(base_url=base_url, api_key="unused")
# What LangChain sent with the second turn and with the tool's output: only what was new.
sent = client.responses.input_items.list(messages[4].response_metadata["id"])
tool_sent = client.responses.input_items.list(answered.response_metadata["id"])
# LangChain's default keeps the history on the client and resends all of it: 121 messages, more
# than one Table transaction holds, stored whole all the same.
from langchain_core.messages import AIMessage

resending = ChatOpenAI(model=model, base_url=base_url, api_key="unused", use_responses_api=True)
history = []
for n in range(60):
    history += [HumanMessage(f"long question {n}"), AIMessage(f"long answer {n}")]
history.append(HumanMessage("langchain long"))
long_answer = resending.invoke(history)
# A model that refuses: LangChain's message carries a refusal block with its text.
refused = resending.invoke([HumanMessage("[[refuse]] a question the framework sees refused")])
# A typed answer: with_structured_output sends the model's JSON schema as text.format.
from pydantic import BaseModel


class Forecast(BaseModel):
    """A forecast."""

    city: str
    days: int


structured = resending.with_structured_output(Forecast)
forecast = structured.invoke([HumanMessage("typed-lc forecast")])
long_sent = list(client.responses.input_items.list(long_answer.response_metadata["id"], order="asc"))
# An image and a PDF as LangChain's multimodal docs send them: standard content blocks.
PNG_BASE64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
looked = resending.invoke(
    [
        HumanMessage(
            content=[
                {"type": "text", "text": "langchain image: what is this?"},
                {"type": "image", "base64": PNG_BASE64, "mime_type": "image/png"},
                {"type": "image", "url": "https://example.com/cat.png"},
                {"type": "file", "base64": "JVBERi0xLjQK", "mime_type": "application/pdf", "filename": "doc.pdf"},
            ]
        )
    ]
)
looked_sent = list(client.responses.input_items.list(looked.response_metadata["id"]))


# A tool that returns an image: LangChain sends its content blocks as the call's output parts.
@tool
def screenshot() -> list:
    """A screenshot of the page."""
    return [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG_BASE64}}]


screen_llm = llm.bind_tools([screenshot])
screening = [HumanMessage("[[tool:screenshot {}]] lc-image screenshot")]
screening.append(screen_llm.invoke(screening))
screening += [screenshot.invoke(call) for call in screening[-1].tool_calls]
screened = screen_llm.invoke(screening)
screened_sent = list(client.responses.input_items.list(screened.response_metadata["id"]))
print(
    json.dumps(
        {
            "long": long_answer.text,
            "refusal": [block for block in refused.content if isinstance(block, dict) and block["type"] == "refusal"],
            "long_sent": [item.content[0].text for item in long_sent],
            "image": looked.text,
            "image_parts": [part.model_dump(exclude_none=True) for part in looked_sent[0].content],
            "deltas": [delta for delta in deltas if delta],
            "chain": [messages[2].text, messages[4].text, messages[6].text],
            "sent": [item.content[0].text for item in sent.data],
            "tool_calls": [{"name": call["name"], "args": call["args"]} for call in asked.tool_calls],
            "tool": answered.text,
            "tool_sent": [item.type for item in tool_sent.data],
            "typed": forecast.model_dump(),
            "screened": screened.text,
            "screened_output": [part.model_dump(exclude_none=True) for part in screened_sent[0].output],
            "screenshot": "data:image/png;base64," + PNG_BASE64,
        }
    )
)
