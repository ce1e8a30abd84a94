"""POST /v1/responses (its body, tools and tool choice among it) and the query of
GET /v1/responses/{id}."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import (
    Discriminator,
    Field,
    Tag,
)

from chat.engine.items import Item, ItemReference, message
from chat.engine.model import FunctionTool, NamedFunction, OutputFormat, ToolChoice
from chat.web.openai.errors import InvalidParameter
from chat.web.openai.requests.inputs import InputItem, engine_items, item_references
from chat.web.openai.requests.query import query_values
from chat.web.openai.requests.shaping import ReasoningEffort, ReasoningIn, TextIn, Verbosity, output_format
from chat.web.openai.requests.strict import (
    TAG,
    UNSUPPORTED,
    Refused,
    Strict,
    Unsupported,
    by_type,
    is_none,
    is_none_or_false,
    text_or,
    validate_body,
)
from chat.web.openai.requests.values import (
    MAX_INPUT_ITEMS,
    MAX_OUTPUT_TOKENS,
    MAX_TOOLS,
    MIN_OUTPUT_TOKENS,
    ConversationId,
    FunctionName,
    Includes,
    Metadata,
    ModelName,
    ObjectId,
    PromptCacheKey,
    SafetyIdentifier,
    Schema,
    Text,
    User,
)


@dataclass(frozen=True)
class ResponseOptions:
    """What a response does besides its input: echoed in the response object and kept with it."""

    tools: tuple[FunctionTool, ...] = ()
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool = True
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    truncation: Literal["auto", "disabled"] = "auto"  # the token-budget window unless asked otherwise
    metadata: Mapping[str, str] = field(default_factory=dict)
    store: bool = True
    instructions: str | None = None  # only with allow_instructions
    safety_identifier: str | None = None
    user: str | None = None
    prompt_cache_key: str | None = None  # sent to the model as it is
    output_format: OutputFormat | None = None  # None: plain text
    verbosity: Verbosity | None = None
    reasoning_effort: ReasoningEffort | None = None
    compact_threshold: int | None = None  # context_management's: compact the window first from this many tokens


@dataclass(frozen=True)
class ResponseRequest:
    """POST /v1/responses: new input items, where they continue, and the options."""

    model: str
    inputs: tuple[Item, ...]
    references: tuple[ItemReference, ...]  # item_reference inputs, in their places among `inputs`
    conversation_id: str | None
    previous_response_id: str | None
    stream: bool
    include: tuple[str, ...]
    options: ResponseOptions
    background: bool = False  # answered at once, queued, run with no client connected


def _is_plain_stream(value: Any) -> bool:
    """`stream_options` that ask for nothing this server leaves out: obfuscation is padding against
    a side channel of event sizes, and the events here carry none, asked for or not."""
    return value is None or (
        isinstance(value, dict)
        and set(value) <= {"include_obfuscation"}
        and all(type(v) is bool for v in value.values())
    )


class _FunctionToolIn(Strict):
    refused: ClassVar[Refused] = {
        "allowed_callers": is_none,
        "async": is_none_or_false,
        "defer_loading": is_none_or_false,
        "output_schema": is_none,
    }

    type: Literal["function"]
    name: FunctionName
    description: Text | None = None
    parameters: Schema | None = None
    strict: bool | None = None


class _UnsupportedTool(Unsupported):
    what = "tools"
    supported = "function tools"


Tool = Annotated[
    Annotated[_FunctionToolIn, Tag("=function")] | Annotated[_UnsupportedTool, Tag("=unsupported"), UNSUPPORTED],
    Discriminator(by_type("function")),
]


class _NamedFunctionIn(Strict):
    type: Literal["function"]
    name: FunctionName


class _UnsupportedToolChoice(Unsupported):
    what = "tool choices"
    supported = "auto, none, required or {type: function, name}"


def _tool_choice_kind(value: Any) -> str:
    return TAG + "mode" if isinstance(value, str) else by_type("function")(value)


ToolChoiceIn = Annotated[
    Annotated[Literal["auto", "none", "required"], Tag("=mode")]
    | Annotated[_NamedFunctionIn, Tag("=function")]
    | Annotated[_UnsupportedToolChoice, Tag("=unsupported"), UNSUPPORTED],
    Discriminator(_tool_choice_kind),
]


class _ContextManagementIn(Strict):
    type: Literal["compaction"]
    compact_threshold: Annotated[int, Field(ge=1)] | None = None


class _ConversationRef(Strict):
    id: ConversationId


ConversationIn = Annotated[
    Annotated[ConversationId, Tag("=text")] | Annotated[_ConversationRef, Tag("=other")],
    Discriminator(text_or),
]


class _ResponseBody(Strict):
    refused: ClassVar[Refused] = {
        "access_programs": is_none,
        "background_options": is_none,
        "image": is_none,
        "max_tool_calls": is_none,
        "moderation": is_none,
        "prompt": is_none,
        "prompt_cache_options": is_none,
        "prompt_cache_retention": is_none,
        "service_tier": lambda value: value in (None, "auto", "default"),
        "stream_options": _is_plain_stream,
        "top_logprobs": lambda value: value is None or (type(value) is int and value == 0),
    }

    model: ModelName
    input: (
        Annotated[
            Annotated[Text, Tag("=text")]
            | Annotated[list[InputItem], Field(max_length=MAX_INPUT_ITEMS, fail_fast=True), Tag("=other")],
            Discriminator(text_or),
        ]
        | None
    ) = None
    instructions: Text | None = None
    conversation: ConversationIn | None = None
    previous_response_id: ObjectId | None = None
    store: bool | None = None
    stream: bool | None = None
    background: bool | None = None
    tools: Annotated[list[Tool], Field(max_length=MAX_TOOLS, fail_fast=True)] | None = None
    tool_choice: ToolChoiceIn | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: Annotated[int, Field(ge=MIN_OUTPUT_TOKENS, le=MAX_OUTPUT_TOKENS)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    metadata: Metadata | None = None
    safety_identifier: SafetyIdentifier | None = None
    user: User | None = None
    prompt_cache_key: PromptCacheKey | None = None
    include: Includes | None = None
    text: TextIn | None = None
    reasoning: ReasoningIn | None = None
    context_management: Annotated[list[_ContextManagementIn], Field(max_length=1)] | None = None


# The body's model, whose JSON Schema /api/openapi.json gives.
ResponseBody = _ResponseBody


def parse_response_request(body: bytes, *, refuse_instructions: bool = False) -> ResponseRequest:
    """POST /v1/responses. `instructions` and system and developer messages are the caller's: the
    model gets them after the server's own system prompt (which they cannot remove or replace).
    `instructions` hold for this response only; the messages are input items, kept with the turn
    like the others. With refuse_instructions, the deployment refuses both."""
    parsed = validate_body(_ResponseBody, body)
    check_continuation(parsed, refuse_instructions=refuse_instructions)
    if parsed.background and parsed.store is False:
        raise InvalidParameter(
            "Background responses need store true: 'background' cannot be used with 'store' false.",
            param="background",
        )
    inputs, references = input_items(parsed.input, refuse_instructions=refuse_instructions)
    tools = tuple(_tool(tool) for tool in parsed.tools or ())
    tool_choice = _tool_choice(parsed.tool_choice, tools)
    conversation = parsed.conversation
    options = ResponseOptions(
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=True if parsed.parallel_tool_calls is None else parsed.parallel_tool_calls,
        max_output_tokens=parsed.max_output_tokens,
        temperature=parsed.temperature,
        top_p=parsed.top_p,
        truncation=parsed.truncation or "auto",
        metadata=dict(parsed.metadata or {}),
        store=True if parsed.store is None else parsed.store,
        instructions=parsed.instructions,
        safety_identifier=parsed.safety_identifier,
        user=parsed.user,
        prompt_cache_key=parsed.prompt_cache_key,
        output_format=output_format(parsed.text),
        verbosity=parsed.text.verbosity if parsed.text is not None else None,
        reasoning_effort=parsed.reasoning.effort if parsed.reasoning is not None else None,
        compact_threshold=compact_threshold(parsed.context_management),
    )
    return ResponseRequest(
        model=parsed.model,
        inputs=inputs,
        references=references,
        conversation_id=conversation.id if isinstance(conversation, _ConversationRef) else conversation,
        previous_response_id=parsed.previous_response_id,
        stream=bool(parsed.stream),
        include=tuple(parsed.include or ()),
        options=options,
        background=bool(parsed.background),
    )


@dataclass(frozen=True)
class RetrieveQuery:
    """GET /v1/responses/{id}: `include`, and whether to stream a background response's events
    (those numbered above `starting_after`)."""

    include: tuple[str, ...]
    stream: bool = False
    starting_after: int = -1


class _Continuing(Protocol):
    conversation: Any
    previous_response_id: str | None
    instructions: str | None


def check_continuation(parsed: _Continuing, *, refuse_instructions: bool) -> None:
    """What a request that continues a window may not say together: a conversation and a response
    to continue, or instructions where the deployment owns the system prompt."""
    if parsed.conversation is not None and parsed.previous_response_id is not None:
        raise InvalidParameter(
            "Mutually exclusive parameters: send only one of 'previous_response_id' or 'conversation'.",
            param="conversation",
            code="mutually_exclusive_parameters",
        )
    if parsed.instructions is not None and refuse_instructions:
        raise InvalidParameter(
            "This deployment owns the system prompt: 'instructions' are not accepted.",
            param="instructions",
            code="instructions_not_allowed",
        )


def input_items(
    value: str | list[Any] | None, *, refuse_instructions: bool
) -> tuple[tuple[Item, ...], tuple[ItemReference, ...]]:
    """`input` as engine items (a string is one user message), and the item references among it.
    An empty string is no input, as an empty list is: there is nothing of it to answer or keep."""
    if isinstance(value, str):
        return ((message("user", value),) if value else ()), ()
    items = value or []
    inputs = engine_items(items, "input", refuse_instructions=refuse_instructions, references=True)
    return inputs, item_references(items)


def parse_response_retrieve_query(query: Iterable[tuple[str, str]]) -> RetrieveQuery:
    values, include = query_values(query, ("stream", "starting_after", "include_obfuscation"))
    stream = values.get("stream", "false")
    if stream not in ("true", "false"):
        raise InvalidParameter("'stream' is true or false.", param="stream")
    after = values.get("starting_after")
    if after is not None and not (after.isascii() and after.isdigit() and len(after) <= 9):
        raise InvalidParameter(
            "'starting_after' is a sequence number: an integer of 0 or more.", param="starting_after"
        )
    if after is not None and stream != "true":
        raise InvalidParameter("'starting_after' goes with 'stream' true.", param="starting_after")
    return RetrieveQuery(include, stream == "true", int(after) if after is not None else -1)


def _tool(tool: _FunctionToolIn) -> FunctionTool:
    return FunctionTool(tool.name, tool.description, tool.parameters, tool.strict)


def _tool_choice(choice: str | _NamedFunctionIn | None, tools: tuple[FunctionTool, ...]) -> ToolChoice:
    names: set[str] = set()
    for index, tool in enumerate(tools):
        if tool.name in names:
            raise InvalidParameter(f"Tool names are unique; {tool.name!r} is repeated.", param=f"tools[{index}].name")
        names.add(tool.name)
    if choice is None:
        return "auto"
    if isinstance(choice, _NamedFunctionIn):
        if choice.name not in names:
            raise InvalidParameter(
                f"tool_choice names the function {choice.name!r}, which is not in tools.", param="tool_choice.name"
            )
        return NamedFunction(choice.name)
    if choice == "required" and not tools:
        raise InvalidParameter("tool_choice 'required' needs tools.", param="tool_choice")
    return choice  # type: ignore[return-value]


def compact_threshold(entries: list[_ContextManagementIn] | None) -> int | None:
    """The threshold `context_management` sets: its compaction entry's, or with none given,
    DEFAULT_COMPACT_THRESHOLD."""
    if not entries:
        return None
    return entries[0].compact_threshold or DEFAULT_COMPACT_THRESHOLD


# A compaction entry's threshold when it gives none: under the default history budget (32,000), so
# the window is compacted before it would start dropping turns.
DEFAULT_COMPACT_THRESHOLD = 30_000


def function_tools(
    tools: list[_FunctionToolIn] | None, choice: str | _NamedFunctionIn | None
) -> tuple[tuple[FunctionTool, ...], ToolChoice]:
    """A body's tools and tool choice, checked as a response's are (other bodies that take them)."""
    parsed = tuple(_tool(tool) for tool in tools or ())
    return parsed, _tool_choice(choice, parsed)
