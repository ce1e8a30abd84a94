"""Engine items and outcomes in OpenAI's JSON shapes: responses, items, conversations, lists, deletions.

The shapes are those the official SDKs' types read (openai.types.responses.Response,
openai.types.conversations.Conversation, ...), with the fields OpenAI always sends present, null
where this server has nothing to say.

    user message        {"type": "message", "role": "user", "content": [{"type": "input_text", ...}]}
    assistant message   {"type": "message", "role": "assistant", "content": [{"type": "output_text",
                         "text", "annotations": [], "logprobs": []}]}
    refusal             {"type": "message", "role": "assistant", "content": [{"type": "refusal",
                         "refusal"}]}: the model declined to answer, and says why
    function_call       {"type": "function_call", "id", "call_id", "name", "arguments", "status"}
    function_call_output{"type": "function_call_output", "id", "call_id", "output", "status"}: its
                         output a string, or its parts when it holds images or files

OpenAI's published OpenAPI description (tests/schemas/openai/) holds them: a field it does not
let be null (`user`, `usage`) is left out when there is nothing to say, and an empty page's
`first_id` and `last_id` are empty strings, as its item lists require strings.

A response's status follows how its answer ended: `completed`, or `incomplete` when the model stopped
at max_output_tokens (finish_reason "length") or at its content filter, or `failed` with an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from chat.engine.items import Compaction, ContentPart, FunctionCall, FunctionCallOutput, ImagePart, Item, Message, Usage
from chat.engine.model import Completion, FunctionTool, NamedFunction, OutputFormat, ToolChoice
from chat.web.errors import status_of
from chat.web.openai.errors import ChatError
from chat.web.openai.requests import ResponseOptions
from chat.web.openai.sealed import seal

ResponseStatus = Literal["in_progress", "completed", "incomplete", "failed"]
ItemStatus = Literal["in_progress", "completed", "incomplete"]
# A response's fields OpenAI's description gives no null: left out instead (old stored skeletons have them null).
OMITTED_WHEN_NULL = ("user", "usage")
# How a model's finish_reason that cut its answer short reads in OpenAI's incomplete_details.
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


@dataclass(frozen=True)
class ResponseHead:
    """What a response says besides its output: known before the model answers, kept with it."""

    id: str
    created_at: int
    model: str
    options: ResponseOptions
    conversation_id: str | None = None
    previous_response_id: str | None = None


def response_object(head: ResponseHead) -> dict[str, Any]:
    """The in-progress `response` object a response starts as, with no output yet: its skeleton,
    which finish(), fail() and in_progress() complete."""
    options = head.options
    response = {
        "id": head.id,
        "object": "response",
        "created_at": head.created_at,
        "status": "in_progress",
        "background": False,
        "completed_at": None,
        "conversation": {"id": head.conversation_id} if head.conversation_id is not None else None,
        "error": None,
        "incomplete_details": None,
        "instructions": options.instructions,
        "max_output_tokens": options.max_output_tokens,
        "max_tool_calls": None,
        "metadata": dict(options.metadata),
        "model": head.model,
        "output": [],
        "parallel_tool_calls": options.parallel_tool_calls,
        "previous_response_id": head.previous_response_id,
        "prompt_cache_key": options.prompt_cache_key,
        "reasoning": {"effort": options.reasoning_effort, "summary": None} if options.reasoning_effort else None,
        "safety_identifier": options.safety_identifier,
        "store": options.store,
        "temperature": options.temperature,
        "text": _text(options.output_format, options.verbosity),
        "tool_choice": _tool_choice(options.tool_choice),
        "tools": [_tool(tool) for tool in options.tools],
        "top_logprobs": None,
        "top_p": options.top_p,
        "truncation": options.truncation,
        "usage": None,
        "user": options.user,
    }
    return _without_nulls(response)


def finish(skeleton: Mapping[str, Any], completion: Completion, *, completed_at: int | None) -> dict[str, Any]:
    """The in-progress `skeleton` of a response (response_object of its head, as a stream began it or
    as it was stored) once its model answered."""
    reason = INCOMPLETE_REASONS.get(completion.finish_reason or "")
    statuses: list[ItemStatus] = ["completed"] * len(completion.outputs)
    if reason is not None and statuses:
        statuses[-1] = "incomplete"
    status: ResponseStatus = "incomplete" if reason is not None else "completed"
    response = {
        **skeleton,
        "status": status,
        "completed_at": completed_at if status == "completed" else None,
        "incomplete_details": {"reason": reason} if reason is not None else None,
        "output": [item_object(item, s) for item, s in zip(completion.outputs, statuses, strict=True)],
        "usage": usage_object(completion.usage) if completion.usage is not None else None,
    }
    return _without_nulls(response)


def in_progress(skeleton: Mapping[str, Any], outputs: Sequence[Item]) -> dict[str, Any]:
    """A response still being answered, with the output items it has so far."""
    response = {**skeleton, "status": "in_progress", "output": [item_object(item, "in_progress") for item in outputs]}
    return _without_nulls(response)


def fail(skeleton: Mapping[str, Any], error: ChatError, outputs: Sequence[Item] = ()) -> dict[str, Any]:
    response = {
        **skeleton,
        "status": "failed",
        "error": response_error(error),
        "output": [item_object(item, "incomplete") for item in outputs],
    }
    return _without_nulls(response)


def _without_nulls(response: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in response.items() if value is not None or key not in OMITTED_WHEN_NULL}


def response_error(error: ChatError) -> dict[str, Any]:
    """The `error` of a failed response. Its code is one of the few the SDK's ResponseError knows: a
    rate limit, a prompt the model refused, or a server error; the message says which of ours it was."""
    status = status_of(error)
    if status == 429:
        code = "rate_limit_exceeded"
    elif status == 400:
        code = "invalid_prompt"  # the prompt itself: filtered, too long, refused by the model
    else:
        code = "server_error"  # and the others: a conversation deleted meanwhile, a lost race
    return {"code": code, "message": error.message}


def usage_object(usage: Usage) -> dict[str, Any]:
    # As Chat Completions reported them (`prompt_tokens_details.cached_tokens`,
    # `completion_tokens_details.reasoning_tokens`); it reports no cache writes.
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def item_object(item: Item, status: ItemStatus = "completed") -> dict[str, Any]:
    """An item as a conversation, a response's output or its input items show it."""
    if isinstance(item, Message):
        return {
            "id": item.id,
            "type": "message",
            "status": status,
            "role": item.role,
            "content": [_part(item.role, part) for part in item.parts] if item.parts else [content_part(item)],
        }
    if isinstance(item, FunctionCall):
        return {
            "id": item.id,
            "type": "function_call",
            "status": status,
            "call_id": item.call_id,
            "name": item.name,
            "arguments": item.arguments,
        }
    if isinstance(item, Compaction):
        # OpenAI's compaction item has no status; its summary goes sealed (sealed.py).
        return {"id": item.id, "type": "compaction", "encrypted_content": seal(item.summary)}
    return _function_call_output(item, status)


def content_part(item: Message, text: str | None = None) -> dict[str, Any]:
    """The one content part of a message: its text, or its refusal; with `text`, holding that instead."""
    shown = item.text if text is None else text
    if item.refusal:
        return {"type": "refusal", "refusal": shown}
    return text_part(item.role, shown)


def _part(role: str, part: ContentPart) -> dict[str, Any]:
    """A content part of an item with images or files, as OpenAI shows it (ResponseInputImage, ResponseInputFile)."""
    if isinstance(part, str):
        return text_part(role, part)
    if isinstance(part, ImagePart):
        return {"type": "input_image", "image_url": part.url, "detail": part.detail}
    return {"type": "input_file", "file_data": part.data, "filename": part.filename}


def text_part(role: str, text: str) -> dict[str, Any]:
    if role == "assistant":
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"type": "input_text", "text": text}


def item_list(items: Sequence[Item], *, has_more: bool) -> dict[str, Any]:
    """A page of items; an empty page's first and last IDs are empty."""
    return {
        "object": "list",
        "data": [item_object(item) for item in items],
        "first_id": items[0].id if items else "",
        "last_id": items[-1].id if items else "",
        "has_more": has_more,
    }


def conversation_object(conversation_id: str, created_at: int, metadata: Mapping[str, str]) -> dict[str, Any]:
    return {"id": conversation_id, "object": "conversation", "created_at": created_at, "metadata": dict(metadata)}


def conversation_deleted(conversation_id: str) -> dict[str, Any]:
    return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}


def response_deleted(response_id: str) -> dict[str, Any]:
    return {"id": response_id, "object": "response.deleted", "deleted": True}


def _function_call_output(item: FunctionCallOutput, status: ItemStatus) -> dict[str, Any]:
    return {
        "id": item.id,
        "type": "function_call_output",
        "status": status,
        "call_id": item.call_id,
        # With images or files, its parts, as OpenAI shows such an output: input_text, input_image, input_file.
        "output": [_part("user", part) for part in item.parts] if item.parts else item.output,
    }


def _tool(tool: FunctionTool) -> dict[str, Any]:
    return {
        "type": "function",
        "name": tool.name,
        "description": tool.description,
        "parameters": dict(tool.parameters) if tool.parameters is not None else None,
        "strict": tool.strict,
    }


def _tool_choice(choice: ToolChoice) -> Any:
    if isinstance(choice, NamedFunction):
        return {"type": "function", "name": choice.name}
    return choice


def _text(output: OutputFormat | None, verbosity: str | None) -> dict[str, Any]:
    """`text` as it was asked for: its format (plain text unless asked otherwise) and verbosity."""
    shape: dict[str, Any] = {"type": "text"}
    if output is not None and output.schema is None:
        shape = {"type": "json_object"}
    elif output is not None and output.schema is not None:
        shape = {"type": "json_schema", "name": output.name, "schema": dict(output.schema), "strict": output.strict}
        if output.description is not None:
            shape["description"] = output.description
    return {"format": shape, "verbosity": verbosity or "medium"}
