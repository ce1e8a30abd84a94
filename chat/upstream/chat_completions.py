"""Items to Chat Completions messages and back: the wire shapes of the one model API we call.

Chat Completions wants a model's function calls in one assistant message (`tool_calls`, after the
message's text if it has any), each answered by a `tool` message right after that assistant message,
before anything else. Items keep the order things happened in, so a caller's output may stand after
other input of its turn: each output is moved up to follow its call.

A model's refusal comes as the assistant message's `refusal` (its `content` null) and goes back to
the model the same way: an assistant message with the refusal and no content, as the openai SDK's
types allow and the OpenAI Agents SDK sends it.

A user message with images or files goes as content parts, in order: `text`, `image_url` (its URL,
https or data:, and detail) and `file` (its base64 data URL and filename). A function call output
with images or files goes as its `tool` message with its text (a tool message holds text alone),
then, after the tool messages of its assistant message, a user message that names the call and
holds its images and files (TOOL_PARTS_HEADING): the way a model that reads images sees what a tool
returned.
A compaction, the model's summary of the conversation before it, goes as an assistant message that
says what it is (SUMMARY_HEADING): the model's own words, so one a caller sent gains nothing over an
assistant message it could have sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chat.engine.items import (
    INSTRUCTION_ROLES,
    Compaction,
    ContentPart,
    FunctionCall,
    FunctionCallOutput,
    ImagePart,
    Item,
    Message,
    attachments,
    message,
)
from chat.engine.items import function_call as new_function_call
from chat.engine.model import FunctionTool, ModelRequest, NamedFunction, OutputFormat, ToolChoice

SUMMARY_HEADING = "Summary of the conversation so far:\n"
# The text before the parts of a function call output's images and files, in a user message of its own.
TOOL_PARTS_HEADING = "The output of tool call {call_id}:"
# A tool message's text when its output is images and files alone: they follow.
TOOL_PARTS_ONLY = "(images or files, in the next message)"


def chat_messages(
    system_prompt: str, items: Sequence[Item], *, instructions: str | None = None, caller_role: str = "system"
) -> list[dict[str, Any]]:
    """The chat completions messages: the server's system prompt first, always; then the caller's
    `instructions`; then the items, a caller's system and developer messages among them. What
    comes from the caller goes under `caller_role`: "developer" where the API version takes it."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}]
    if instructions:
        messages.append({"role": caller_role, "content": instructions})
    outputs = {item.call_id: item for item in items if isinstance(item, FunctionCallOutput)}
    answered: set[str] = set()
    assistant: dict[str, Any] | None = None

    def answer(answering: Sequence[FunctionCallOutput]) -> None:
        """The tool messages of outputs, then the parts of those holding images or files."""
        for output in answering:
            messages.append({"role": "tool", "tool_call_id": output.call_id, "content": _tool_text(output)})
            answered.add(output.call_id)
        for output in answering:
            if output.parts:
                heading = {"type": "text", "text": TOOL_PARTS_HEADING.format(call_id=output.call_id)}
                messages.append({"role": "user", "content": [heading, *map(_content_part, attachments(output))]})

    def flush() -> None:
        nonlocal assistant
        if assistant is None:
            return
        messages.append(assistant)
        calls = [call["id"] for call in assistant.get("tool_calls", ())]
        answer([outputs[call] for call in dict.fromkeys(calls) if call in outputs and call not in answered])
        assistant = None

    for item in items:
        if isinstance(item, Message):
            flush()
            if item.role == "assistant" and item.refusal:
                assistant = {"role": "assistant", "refusal": item.text}
            elif item.role == "assistant":
                assistant = {"role": "assistant", "content": item.text}
            elif item.role in INSTRUCTION_ROLES:
                messages.append({"role": caller_role, "content": item.text})
            elif item.parts:
                messages.append({"role": "user", "content": [_content_part(part) for part in item.parts]})
            else:
                messages.append({"role": "user", "content": item.text})
        elif isinstance(item, Compaction):
            flush()
            messages.append({"role": "assistant", "content": SUMMARY_HEADING + item.summary})
        elif isinstance(item, FunctionCall):
            if assistant is None:
                assistant = {"role": "assistant", "content": None}
            assistant.setdefault("tool_calls", []).append(
                {"id": item.call_id, "type": "function", "function": {"name": item.name, "arguments": item.arguments}}
            )
        elif item.call_id not in answered:
            flush()
            if item.call_id not in answered:
                answer([item])
    flush()
    return messages


def _tool_text(output: FunctionCallOutput) -> str:
    return TOOL_PARTS_ONLY if output.parts and not output.output else output.output


def _content_part(part: ContentPart) -> dict[str, Any]:
    """A user message's part as Chat Completions takes it: text, image_url or file."""
    if isinstance(part, str):
        return {"type": "text", "text": part}
    if isinstance(part, ImagePart):
        return {"type": "image_url", "image_url": {"url": part.url, "detail": part.detail}}
    return {"type": "file", "file": {"file_data": part.data, "filename": part.filename}}


def request_options(request: ModelRequest) -> dict[str, Any]:
    """The keyword arguments of a chat.completions.create call, beside model, messages and the
    output limit (whose name the model adapter picks)."""
    options: dict[str, Any] = {}
    if request.tools:
        options["tools"] = [_tool(tool) for tool in request.tools]
        if request.parallel_tool_calls is not None:
            options["parallel_tool_calls"] = request.parallel_tool_calls
    if request.tool_choice is not None:
        options["tool_choice"] = _tool_choice(request.tool_choice)
    if request.output_format is not None:
        options["response_format"] = _response_format(request.output_format)
    for name in _PASSED_AS_THEY_ARE:
        value = getattr(request, name)
        if value is not None:
            options[name] = value
    return options


# The request's options that Chat Completions takes under the same name and as they are, when set.
_PASSED_AS_THEY_ARE = ("temperature", "top_p", "user", "prompt_cache_key", "verbosity", "reasoning_effort")


def _response_format(output: OutputFormat) -> dict[str, Any]:
    """`response_format`: a json_schema with its name and schema, or, with no schema, json_object."""
    if output.schema is None:
        return {"type": "json_object"}
    schema: dict[str, Any] = {"name": output.name, "schema": dict(output.schema)}
    if output.description is not None:
        schema["description"] = output.description
    if output.strict is not None:
        schema["strict"] = output.strict
    return {"type": "json_schema", "json_schema": schema}


def output_items(content: str | None, tool_calls: Sequence[Any] | None, refusal: str | None = None) -> tuple[Item, ...]:
    """The items of an answer: its text, its refusal, then its function calls; an empty answer is
    an empty message."""
    items: list[Item] = []
    if content or not (tool_calls or refusal):
        items.append(message("assistant", content or ""))
    if refusal:
        items.append(message("assistant", refusal, refusal=True))
    for call in tool_calls or ():
        items.append(new_function_call(call.id, call.function.name, call.function.arguments or ""))
    return tuple(items)


def _tool(tool: FunctionTool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    if tool.parameters is not None:
        function["parameters"] = dict(tool.parameters)
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _tool_choice(choice: ToolChoice) -> Any:
    if isinstance(choice, NamedFunction):
        return {"type": "function", "function": {"name": choice.name}}
    return choice
