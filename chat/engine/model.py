"""What the engine needs from a model, and what a model answers.

The engine asks with a ModelRequest (the system prompt, the prompt's items, tools, sampling
options, the answer's format, verbosity and reasoning effort) and gets a Completion, or, streamed,
ModelEvents ending with one Finished. The adapter in chat/upstream speaks Chat Completions with the
openai SDK and raises only the engine's errors.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from chat.engine.items import Item, Usage, message_text


@dataclass(frozen=True)
class FunctionTool:
    """A function the model may call; the caller runs it and sends back its output."""

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] | None = None  # a JSON Schema
    strict: bool | None = None


def tool_text(tool: FunctionTool) -> str:
    """What a tool is to the model, as text: what its token estimate is made from."""
    parameters = json.dumps(tool.parameters, separators=(",", ":")) if tool.parameters is not None else ""
    return tool.name + (tool.description or "") + parameters


@dataclass(frozen=True)
class NamedFunction:
    """tool_choice that forces a call of this function."""

    name: str


ToolChoice = Literal["auto", "none", "required"] | NamedFunction


@dataclass(frozen=True)
class OutputFormat:
    """The shape the answer's text must take: a JSON document valid against `schema` (named
    `name`, followed exactly when `strict`), or with no schema any JSON object. No format: free text."""

    name: str | None = None
    schema: Mapping[str, Any] | None = None
    strict: bool | None = None
    description: str | None = None


@dataclass(frozen=True)
class ModelRequest:
    system_prompt: str  # the server's, always first
    items: Sequence[Item]
    instructions: str | None = None  # the caller's, after the system prompt (not kept with the turn)
    tools: Sequence[FunctionTool] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    user: str | None = None  # a stable, opaque caller ID for the model provider's abuse monitoring
    prompt_cache_key: str | None = None  # groups requests that share a prompt prefix, for the provider's cache
    output_format: OutputFormat | None = None
    verbosity: str | None = None  # how long an answer the model writes: low, medium, high
    reasoning_effort: str | None = None  # how long a reasoning model thinks before answering


@dataclass(frozen=True)
class Completion:
    outputs: tuple[Item, ...]
    finish_reason: str | None
    usage: Usage | None

    @property
    def text(self) -> str:
        """The text of the answer's messages."""
        return message_text(self.outputs)


@dataclass(frozen=True)
class ItemStarted:
    """A new output item begins: a message (or a refusal) with no text yet, or a call with no
    arguments yet."""

    item: Item


@dataclass(frozen=True)
class TextDelta:
    """More text of a message: of its refusal, when the message started as one."""

    item_id: str
    text: str


@dataclass(frozen=True)
class ArgumentsDelta:
    item_id: str
    delta: str


@dataclass(frozen=True)
class Finished:
    completion: Completion = field()


ModelEvent = ItemStarted | TextDelta | ArgumentsDelta | Finished


class Model(Protocol):
    @property
    def name(self) -> str: ...

    async def complete(self, request: ModelRequest) -> Completion: ...

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Start a streamed answer: failures before the first event raise here, later ones from the
        iterator. The iterator ends with one Finished."""
        ...

    async def check(self) -> None: ...

    async def close(self) -> None: ...
