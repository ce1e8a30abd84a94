"""POST /v1/responses/input_tokens and POST /v1/responses/compact: a request's input, and where it
continues, as a response's body has them (responses.py), without what only an answer needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Discriminator, Field, Tag

from chat.engine.items import Item, ItemReference
from chat.engine.model import FunctionTool, ToolChoice
from chat.web.openai.requests.inputs import InputItem
from chat.web.openai.requests.responses import (
    ConversationIn,
    Tool,
    ToolChoiceIn,
    check_continuation,
    function_tools,
    input_items,
)
from chat.web.openai.requests.strict import Refused, Strict, is_none, text_or, validate_body
from chat.web.openai.requests.values import MAX_INPUT_ITEMS, MAX_TOOLS, ModelName, ObjectId, PromptCacheKey, Text

Input = Annotated[
    Annotated[Text, Tag("=text")]
    | Annotated[list[InputItem], Field(max_length=MAX_INPUT_ITEMS, fail_fast=True), Tag("=other")],
    Discriminator(text_or),
]


@dataclass(frozen=True)
class WindowRequest:
    """What both count or compact: the input, where it continues, the caller's instructions and tools."""

    model: str | None
    inputs: tuple[Item, ...]
    references: tuple[ItemReference, ...]
    conversation_id: str | None
    previous_response_id: str | None
    instructions: str | None = None
    tools: tuple[FunctionTool, ...] = ()
    tool_choice: ToolChoice = "auto"
    truncate: bool = True
    prompt_cache_key: str | None = None  # a compaction's: sent with the summary's request


class _Common(Strict):
    input: Input | None = None
    instructions: Text | None = None
    conversation: ConversationIn | None = None
    previous_response_id: ObjectId | None = None


class InputTokensBody(_Common):
    # Options that change the answer, not the input this server counts, are refused, not ignored.
    refused: ClassVar[Refused] = {"personality": is_none, "reasoning": is_none, "text": is_none}

    model: ModelName | None = None
    tools: Annotated[list[Tool], Field(max_length=MAX_TOOLS, fail_fast=True)] | None = None
    tool_choice: ToolChoiceIn | None = None
    parallel_tool_calls: bool | None = None
    truncation: Literal["auto", "disabled"] | None = None


class CompactBody(_Common):
    refused: ClassVar[Refused] = {
        "image": is_none,
        "prompt_cache_options": is_none,
        "prompt_cache_retention": is_none,
        "service_tier": lambda value: value in (None, "auto", "default"),
    }

    model: ModelName
    prompt_cache_key: PromptCacheKey | None = None


def parse_input_tokens(body: bytes, *, refuse_instructions: bool = False) -> WindowRequest:
    parsed = validate_body(InputTokensBody, body)
    tools, choice = function_tools(parsed.tools, parsed.tool_choice)
    common = _common(parsed, refuse_instructions)
    return WindowRequest(
        parsed.model, *common, tools=tools, tool_choice=choice, truncate=parsed.truncation != "disabled"
    )


def parse_compact(body: bytes, *, refuse_instructions: bool = False) -> WindowRequest:
    parsed = validate_body(CompactBody, body)
    return WindowRequest(parsed.model, *_common(parsed, refuse_instructions), prompt_cache_key=parsed.prompt_cache_key)


def _common(
    parsed: _Common, refuse_instructions: bool
) -> tuple[tuple[Item, ...], tuple[ItemReference, ...], str | None, str | None, str | None]:
    check_continuation(parsed, refuse_instructions=refuse_instructions)
    inputs, references = input_items(parsed.input, refuse_instructions=refuse_instructions)
    conversation: Any = parsed.conversation
    conversation_id = conversation if conversation is None or isinstance(conversation, str) else conversation.id
    return inputs, references, conversation_id, parsed.previous_response_id, parsed.instructions
