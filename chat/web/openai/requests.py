"""Request bodies and query strings of OpenAI's Responses and Conversations APIs, as the official SDKs
send them, parsed into engine items and plain option dataclasses.

Every field OpenAI defines is either honoured or refused with a 400 that names it (`param`): a field
this server cannot honour is accepted only with a value that asks for nothing (null, `false`, the
default), so nothing a caller asks for is silently dropped. A field OpenAI does not define is a 400
too. Input item IDs (`id`, `status`) are echoes of items OpenAI returned: they are accepted and the
items get new IDs, unique in their conversation, as every stored item does.

A bad body costs what a good one does: lists, strings and metadata are bounded before their members
are validated, lists stop at their first bad member, and only the first error is reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    ValidationError,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from chat.engine.ids import MAX_CONVERSATION_ID_CHARS
from chat.engine.items import INSTRUCTION_ROLES, Item, ItemReference, function_call, function_call_output, message
from chat.engine.model import FunctionTool, NamedFunction, ToolChoice
from chat.web import json_body
from chat.web.openai.errors import InvalidParameter

MAX_INPUT_ITEMS = 1_000
MAX_CONVERSATION_ITEMS = 20  # OpenAI's limit on the items a conversation is created or extended with
MAX_CONTENT_PARTS = 100
MAX_TOOLS = 128
MAX_INCLUDES = 16
MAX_METADATA_KEYS = 16  # metadata: OpenAI's rules
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
MAX_MODEL_CHARS = 256
MAX_ID_CHARS = 256  # response and item IDs
MAX_CALL_ID_CHARS = 256
MAX_SAFETY_IDENTIFIER_CHARS = 128
MAX_USER_CHARS = 256
MAX_PROMPT_CACHE_KEY_CHARS = 256
MAX_SCHEMA_DEPTH = 32
MIN_OUTPUT_TOKENS = 16  # OpenAI's minimum
MAX_OUTPUT_TOKENS = 2**31 - 1
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# What `include` may ask for: extra data of tools and inputs this server never has (so nothing to add),
# or reasoning it never returns. Log probabilities it cannot give, so they are refused.
INCLUDABLE = (
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
)
# The Functions host reads the function key from `code` when it is not in a header.
HOST_QUERY_PARAMS = ("code",)
_ID_PATTERN = r"^[A-Za-z0-9_-]+$"
_ID = re.compile(_ID_PATTERN[1:-1])
_FUNCTION_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_TAG = "="  # discriminator tags start with it, so that they can be left out of a `param`


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


@dataclass(frozen=True)
class ConversationCreate:
    items: tuple[Item, ...]
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class ConversationUpdate:
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class ItemsCreate:
    items: tuple[Item, ...]
    include: tuple[str, ...]


@dataclass(frozen=True)
class ListQuery:
    after: str | None
    limit: int
    order: Literal["asc", "desc"]
    include: tuple[str, ...]


# ---------------------------------------------------------------------------------------------------
# Value types


def _utf8(value: str) -> str:
    """Reject lone surrogates (JSON may escape them): they cannot be stored or sent as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("invalid_text", "the text contains an unpaired UTF-16 surrogate") from None
    return value


def _shallow_schema(value: dict[str, Any]) -> dict[str, Any]:
    """A tool's JSON Schema goes to the model as it is: only its depth is bounded here."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_SCHEMA_DEPTH:
            raise PydanticCustomError(
                "schema_too_deep", "the schema nests deeper than {max_depth} levels", {"max_depth": MAX_SCHEMA_DEPTH}
            )
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return value


def _few_keys(value: Any) -> Any:
    # Counted before the keys and values are validated, which pydantic does for every entry first.
    if isinstance(value, dict) and len(value) > MAX_METADATA_KEYS:
        raise PydanticCustomError(
            "object_above_max_properties",
            "too many properties. Expected an object with at most {max} properties, "
            "but got an object with {count} properties instead",
            {"max": MAX_METADATA_KEYS, "count": len(value)},
        )
    return value


# Strings: their length is bounded before their content is checked.
UTF8 = AfterValidator(_utf8)
Text = Annotated[str, UTF8]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_MODEL_CHARS), UTF8]
ObjectId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS, pattern=_ID_PATTERN)]
ConversationId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CONVERSATION_ID_CHARS), UTF8]
CallId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CALL_ID_CHARS), UTF8]
FunctionName = Annotated[str, StringConstraints(pattern=_FUNCTION_NAME_PATTERN)]
SafetyIdentifier = Annotated[str, StringConstraints(max_length=MAX_SAFETY_IDENTIFIER_CHARS), UTF8]
User = Annotated[str, StringConstraints(max_length=MAX_USER_CHARS), UTF8]
PromptCacheKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PROMPT_CACHE_KEY_CHARS), UTF8]
MetadataKey = Annotated[str, StringConstraints(max_length=MAX_METADATA_KEY_CHARS), UTF8]
MetadataValue = Annotated[str, StringConstraints(max_length=MAX_METADATA_VALUE_CHARS), UTF8]
Metadata = Annotated[
    dict[MetadataKey, MetadataValue],
    BeforeValidator(_few_keys),
    Field(json_schema_extra={"maxProperties": MAX_METADATA_KEYS}),  # what _few_keys checks
]
Schema = Annotated[dict[str, Any], AfterValidator(_shallow_schema)]
Includes = Annotated[list[Literal[INCLUDABLE]], Field(max_length=MAX_INCLUDES, fail_fast=True)]  # type: ignore[valid-type]
ItemStatus = Literal["in_progress", "completed", "incomplete"]


def _is_none(value: Any) -> bool:
    return value is None


def _is_none_or_false(value: Any) -> bool:
    return value is None or value is False


def _is_none_or_empty(value: Any) -> bool:
    return value is None or value == []


def _asks_no_reasoning(value: Any) -> bool:
    """`reasoning` as frameworks send it by default: absent, empty, or its fields null."""
    return value is None or (
        isinstance(value, dict)
        and set(value) <= {"effort", "summary", "generate_summary"}
        and all(v is None for v in value.values())
    )


def _is_plain_stream(value: Any) -> bool:
    """`stream_options` that ask for nothing this server leaves out: obfuscation is padding against
    a side channel of event sizes, and the events here carry none, asked for or not."""
    return value is None or (
        isinstance(value, dict)
        and set(value) <= {"include_obfuscation"}
        and all(type(v) is bool for v in value.values())
    )


def _is_plain_text(value: Any) -> bool:
    """`text` that asks for plain text, the only output format this server makes."""
    if value is None:
        return True
    return (
        isinstance(value, dict)
        and set(value) <= {"format", "verbosity"}
        and value.get("format") in (None, {"type": "text"})
        and value.get("verbosity") in (None, "medium")  # OpenAI's default
    )


class _Strict(BaseModel):
    """A JSON object of a request with exactly OpenAI's fields: those in `refused` are accepted only
    with a value that asks for nothing, and any other field the model does not declare is unknown."""

    # defer_build: the validators are built at a model's first request, not when the worker starts.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)
    refused: ClassVar[Mapping[str, Callable[[Any], bool]]] = {}

    @model_validator(mode="before")
    @classmethod
    def _screen(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        # One pass that stops at the first offending key: extra="forbid" would report every one.
        for key, value in data.items():
            if key in cls.refused:
                if not cls.refused[key](value):
                    raise PydanticCustomError(
                        "unsupported_parameter", "this server does not support it", {"field": _shown_key(key)}
                    )
            elif key not in cls.model_fields:
                raise PydanticCustomError("unknown_parameter", "unknown parameter", {"field": _shown_key(key)})
        return {key: value for key, value in data.items() if key not in cls.refused}


class _Unsupported(_Strict):
    """Stands for a kind this server does not have (an item, a content part, a tool): always an error."""

    what: ClassVar[str] = "values"
    supported: ClassVar[str] = ""

    @model_validator(mode="before")
    @classmethod
    def _screen(cls, data: Any) -> Any:
        kind = data.get("type") if isinstance(data, dict) else None
        shown = repr(kind[:40]) if isinstance(kind, str) else "that"
        raise PydanticCustomError(
            "unsupported_type",
            "{what} of type {kind} are not supported here; use {supported}",
            {"field": "type", "what": cls.what, "kind": shown, "supported": cls.supported},
        )


# The member of a union that stands for the kinds this server does not have: the request's JSON Schema
# (in /api/openapi.json) lists only the kinds it accepts.
UNSUPPORTED = SkipJsonSchema()


def _by_type(*kinds: str) -> Callable[[Any], str]:
    """A discriminator on `type`: a known kind, else the _Unsupported member. Non-objects and objects with
    no `type` go to the first kind, whose model then says what it expected."""

    def kind(value: Any) -> str:
        if not isinstance(value, dict):
            return _TAG + kinds[0]
        found = value.get("type", kinds[0])
        return _TAG + found if found in kinds else _TAG + "unsupported"

    return kind


def _text_or(value: Any) -> str:
    """A discriminator of a string or something else (a list of parts, an object)."""
    return _TAG + ("text" if isinstance(value, str) else "other")


# ---------------------------------------------------------------------------------------------------
# Content parts and input items


class _InputText(_Strict):
    refused = {"prompt_cache_breakpoint": _is_none}

    type: Literal["input_text"]
    text: Text


class _OutputText(_Strict):
    # An assistant message sent back as it came: its empty annotations and log probabilities are echoes.
    refused = {"annotations": _is_none_or_empty, "logprobs": _is_none_or_empty}

    type: Literal["output_text"]
    text: Text


class _Refusal(_Strict):
    # An assistant message's refusal, sent back as it came: the model declined to answer.
    type: Literal["refusal"]
    refusal: Text


class _UnsupportedPart(_Unsupported):
    what = "content parts"
    supported = "input_text (or output_text and refusal in assistant messages)"


class _UnsupportedOutputPart(_Unsupported):
    what = "function call outputs"
    supported = "a string or input_text parts"


Part = Annotated[
    Annotated[_InputText, Tag("=input_text")]
    | Annotated[_OutputText, Tag("=output_text")]
    | Annotated[_Refusal, Tag("=refusal")]
    | Annotated[_UnsupportedPart, Tag("=unsupported"), UNSUPPORTED],
    Discriminator(_by_type("input_text", "output_text", "refusal")),
]
Content = Annotated[
    Annotated[Text, Tag("=text")]
    | Annotated[list[Part], Field(max_length=MAX_CONTENT_PARTS, fail_fast=True), Tag("=other")],
    Discriminator(_text_or),
]
OutputPart = Annotated[
    Annotated[_InputText, Tag("=input_text")] | Annotated[_UnsupportedOutputPart, Tag("=unsupported"), UNSUPPORTED],
    Discriminator(_by_type("input_text")),
]
Output = Annotated[
    Annotated[Text, Tag("=text")]
    | Annotated[list[OutputPart], Field(max_length=MAX_CONTENT_PARTS, fail_fast=True), Tag("=other")],
    Discriminator(_text_or),
]


def _joined(content: str | list[Any]) -> str:
    """The text of a string or of text parts, joined as they are: as the model reads a list of parts."""
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content if isinstance(part, _InputText | _OutputText))


class _MessageIn(_Strict):
    refused = {"phase": _is_none}

    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: Content
    id: ObjectId | None = None
    status: ItemStatus | None = None

    @model_validator(mode="after")
    def _parts_fit_the_role(self) -> _MessageIn:
        if isinstance(self.content, str):
            return self
        if self.role != "assistant":
            for index, part in enumerate(self.content):
                if not isinstance(part, _InputText):
                    raise PydanticCustomError(
                        "invalid_value",
                        "{role} messages hold input_text parts; output_text and refusal are the assistant's",
                        {"field": f"content[{index}].type", "role": self.role},
                    )
        elif self.refusal:
            # One message is one thing the model did: answered, or refused.
            for index, part in enumerate(self.content):
                if not isinstance(part, _Refusal):
                    raise PydanticCustomError(
                        "invalid_value",
                        "a message holds text or a refusal, not both; send each as a message of its own",
                        {"field": f"content[{index}].type"},
                    )
        return self

    @property
    def refusal(self) -> bool:
        """Whether the message is the assistant's refusal: its parts are refusal parts."""
        return not isinstance(self.content, str) and any(isinstance(part, _Refusal) for part in self.content)

    @property
    def text(self) -> str:
        """Its text, or the text of its refusal."""
        if self.refusal:
            return "".join(part.refusal for part in self.content if isinstance(part, _Refusal))
        return _joined(self.content)


class _FunctionCallIn(_Strict):
    refused = {"caller": _is_none, "namespace": _is_none, "async": _is_none_or_false}

    type: Literal["function_call"]
    call_id: CallId
    name: FunctionName
    arguments: Text
    id: ObjectId | None = None
    status: ItemStatus | None = None


class _FunctionCallOutputIn(_Strict):
    refused = {"caller": _is_none, "name": _is_none, "namespace": _is_none}

    type: Literal["function_call_output"]
    call_id: CallId
    output: Output
    id: ObjectId | None = None
    status: ItemStatus | None = None

    @property
    def text(self) -> str:
        return _joined(self.output)


class _ItemReferenceIn(_Strict):
    # OpenAI's ItemReferenceParam: its `type` may be left out (then an item with an `id` and no
    # `role` is one).
    type: Literal["item_reference"] | None = "item_reference"
    id: ObjectId


class _UnsupportedItem(_Unsupported):
    what = "input items"
    supported = "message, function_call, function_call_output or item_reference"


def _input_kind(value: Any) -> str:
    """The kind of an input item: its `type`; with none, a message, or an item reference if it has
    an `id` and no `role`."""
    if isinstance(value, dict) and value.get("type") is None and "id" in value and "role" not in value:
        return _TAG + "item_reference"
    return _by_type("message", "function_call", "function_call_output", "item_reference")(value)


InputItem = Annotated[
    Annotated[_MessageIn, Tag("=message")]
    | Annotated[_FunctionCallIn, Tag("=function_call")]
    | Annotated[_FunctionCallOutputIn, Tag("=function_call_output")]
    | Annotated[_ItemReferenceIn, Tag("=item_reference")]
    | Annotated[_UnsupportedItem, Tag("=unsupported"), UNSUPPORTED],
    Discriminator(_input_kind),
]

# ---------------------------------------------------------------------------------------------------
# Tools


class _FunctionToolIn(_Strict):
    refused = {
        "allowed_callers": _is_none,
        "async": _is_none_or_false,
        "defer_loading": _is_none_or_false,
        "output_schema": _is_none,
    }

    type: Literal["function"]
    name: FunctionName
    description: Text | None = None
    parameters: Schema | None = None
    strict: bool | None = None


class _UnsupportedTool(_Unsupported):
    what = "tools"
    supported = "function tools"


Tool = Annotated[
    Annotated[_FunctionToolIn, Tag("=function")] | Annotated[_UnsupportedTool, Tag("=unsupported"), UNSUPPORTED],
    Discriminator(_by_type("function")),
]


class _NamedFunctionIn(_Strict):
    type: Literal["function"]
    name: FunctionName


class _UnsupportedToolChoice(_Unsupported):
    what = "tool choices"
    supported = "auto, none, required or {type: function, name}"


def _tool_choice_kind(value: Any) -> str:
    return _TAG + "mode" if isinstance(value, str) else _by_type("function")(value)


ToolChoiceIn = Annotated[
    Annotated[Literal["auto", "none", "required"], Tag("=mode")]
    | Annotated[_NamedFunctionIn, Tag("=function")]
    | Annotated[_UnsupportedToolChoice, Tag("=unsupported"), UNSUPPORTED],
    Discriminator(_tool_choice_kind),
]


class _ConversationRef(_Strict):
    id: ConversationId


ConversationIn = Annotated[
    Annotated[ConversationId, Tag("=text")] | Annotated[_ConversationRef, Tag("=other")],
    Discriminator(_text_or),
]

# ---------------------------------------------------------------------------------------------------
# Bodies


class _ResponseBody(_Strict):
    refused = {
        "access_programs": _is_none,
        "background": _is_none_or_false,
        "background_options": _is_none,
        "context_management": _is_none_or_empty,
        "image": _is_none,
        "max_tool_calls": _is_none,
        "moderation": _is_none,
        "prompt": _is_none,
        "prompt_cache_options": _is_none,
        "prompt_cache_retention": _is_none,
        "reasoning": _asks_no_reasoning,
        "service_tier": lambda value: value in (None, "auto", "default"),
        "stream_options": _is_plain_stream,
        "text": _is_plain_text,
        "top_logprobs": lambda value: value is None or (type(value) is int and value == 0),
    }

    model: ModelName
    input: (
        Annotated[
            Annotated[Text, Tag("=text")]
            | Annotated[list[InputItem], Field(max_length=MAX_INPUT_ITEMS, fail_fast=True), Tag("=other")],
            Discriminator(_text_or),
        ]
        | None
    ) = None
    instructions: Text | None = None
    conversation: ConversationIn | None = None
    previous_response_id: ObjectId | None = None
    store: bool | None = None
    stream: bool | None = None
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


ConversationItems = Annotated[list[InputItem], Field(max_length=MAX_CONVERSATION_ITEMS, fail_fast=True)]


class _ConversationCreateBody(_Strict):
    items: ConversationItems | None = None
    metadata: Metadata | None = None


class _ConversationUpdateBody(_Strict):
    metadata: Metadata | None  # required, and null clears it


class _ItemsCreateBody(_Strict):
    items: Annotated[ConversationItems, Field(min_length=1)]


# The bodies' models, whose JSON Schemas /api/openapi.json gives.
ResponseBody = _ResponseBody
ConversationCreateBody = _ConversationCreateBody
ConversationUpdateBody = _ConversationUpdateBody
ItemsCreateBody = _ItemsCreateBody


# ---------------------------------------------------------------------------------------------------
# Parsing


def parse_response_request(body: bytes, *, refuse_instructions: bool = False) -> ResponseRequest:
    """POST /v1/responses. `instructions` and system and developer messages are the caller's: the
    model gets them after the server's own system prompt (which they cannot remove or replace).
    `instructions` hold for this response only; the messages are input items, kept with the turn
    like the others. With refuse_instructions, the deployment refuses both."""
    parsed = _validate(_ResponseBody, body)
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
    references: tuple[ItemReference, ...] = ()
    if isinstance(parsed.input, str):
        inputs: tuple[Item, ...] = (message("user", parsed.input),)
    else:
        references = tuple(
            ItemReference(index, item.id)
            for index, item in enumerate(parsed.input or [])
            if isinstance(item, _ItemReferenceIn)
        )
        inputs = _items(parsed.input or [], "input", refuse_instructions=refuse_instructions, references=True)
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
    )


def parse_conversation_create(body: bytes, *, refuse_instructions: bool = False) -> ConversationCreate:
    """POST /v1/conversations: at most 20 items to start with, and metadata."""
    parsed = _validate(_ConversationCreateBody, body)
    items = _items(parsed.items or [], "items", refuse_instructions=refuse_instructions)
    return ConversationCreate(items, dict(parsed.metadata or {}))


def parse_conversation_update(body: bytes) -> ConversationUpdate:
    """POST /v1/conversations/{id}: new metadata, replacing the old; null clears it."""
    parsed = _validate(_ConversationUpdateBody, body)
    return ConversationUpdate(dict(parsed.metadata or {}))


def parse_items_create(
    body: bytes, query: Iterable[tuple[str, str]] = (), *, refuse_instructions: bool = False
) -> ItemsCreate:
    """POST /v1/conversations/{id}/items: 1 to 20 items; `include` comes in the query string."""
    parsed = _validate(_ItemsCreateBody, body)
    items = _items(parsed.items, "items", refuse_instructions=refuse_instructions)
    return ItemsCreate(items, parse_include_query(query))


def parse_list_query(query: Iterable[tuple[str, str]]) -> ListQuery:
    """The query of an item list: `after` (an item ID), `limit` 1 to 100 (20), `order` asc or desc (desc)."""
    values, include = _query(query, ("after", "limit", "order"))
    after = values.get("after")
    if after is not None and not is_object_id(after):
        raise InvalidParameter("Invalid 'after': expected an item ID.", param="after")
    limit = values.get("limit")
    if limit is not None and not (re.fullmatch(r"[0-9]{1,3}", limit) and 1 <= int(limit) <= MAX_PAGE_SIZE):
        raise InvalidParameter(f"Invalid 'limit': expected a whole number from 1 to {MAX_PAGE_SIZE}.", param="limit")
    order = values.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidParameter("Invalid 'order': expected 'asc' or 'desc'.", param="order")
    return ListQuery(after, int(limit) if limit else DEFAULT_PAGE_SIZE, order, include)  # type: ignore[arg-type]


def parse_include_query(query: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """The query of a single item's read (or of items added): only `include`."""
    return _query(query, ())[1]


def parse_response_retrieve_query(query: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """The query of GET /v1/responses/{id}: `include`; streaming a stored response again is refused."""
    values, include = _query(query, ("stream", "starting_after", "include_obfuscation"))
    if values.get("stream", "false") != "false":
        raise InvalidParameter(
            "Unsupported parameter: 'stream': a stored response is read whole.",
            param="stream",
            code="unsupported_parameter",
        )
    if "starting_after" in values:
        raise InvalidParameter(
            "Unsupported parameter: 'starting_after': a stored response is read whole.",
            param="starting_after",
            code="unsupported_parameter",
        )
    return include


def _validate(model: type[_Strict], body: bytes) -> Any:
    document = _json_object(body)
    try:
        return model.model_validate(document)
    except ValidationError as e:
        raise _first_error(e) from None


def _json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidParameter("The body is not UTF-8.", param=None, code="invalid_encoding") from None
    try:
        document = json_body.loads(text)
    except json_body.NotJson as e:
        raise InvalidParameter(
            f"We could not parse the JSON body of your request: {e}", param=None, code="invalid_json"
        ) from None
    except (ValueError, RecursionError):  # ValueError: also an integer of more than 4,300 digits
        raise InvalidParameter(
            "We could not parse the JSON body of your request.", param=None, code="invalid_json"
        ) from None
    if not isinstance(document, dict):
        raise InvalidParameter("The body must be a JSON object.", param=None, code="invalid_json")
    return document


def _items(
    parsed: list[Any], where: str, *, refuse_instructions: bool = False, references: bool = False
) -> tuple[Item, ...]:
    """Engine items from parsed input items, in order; system and developer messages among them,
    unless the deployment refuses them. Item references are left for the engine to resolve
    (where `references` allows them; elsewhere they are refused)."""
    items: list[Item] = []
    for index, item in enumerate(parsed):
        if isinstance(item, _ItemReferenceIn):
            if not references:
                raise InvalidParameter(
                    "Item references are not supported here; send the item itself.",
                    param=f"{where}[{index}]",
                    code="unsupported_parameter",
                )
            continue
        if isinstance(item, _MessageIn):
            if item.role in INSTRUCTION_ROLES and refuse_instructions:
                raise InvalidParameter(
                    "This deployment owns the system prompt: send no system or developer messages.",
                    param=f"{where}[{index}].role",
                    code="system_message_not_allowed",
                )
            items.append(message(item.role, item.text, refusal=item.refusal))
        elif isinstance(item, _FunctionCallIn):
            items.append(function_call(item.call_id, item.name, item.arguments))
        else:
            items.append(function_call_output(item.call_id, item.text))
    return tuple(items)


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


def _query(query: Iterable[tuple[str, str]], names: tuple[str, ...]) -> tuple[dict[str, str], tuple[str, ...]]:
    """Single values of `names`, and `include` (repeated, as `include` or `include[]`, as the SDKs send it)."""
    values: dict[str, str] = {}
    include: list[str] = []
    for key, value in query:
        if key in ("include", "include[]"):
            if value not in INCLUDABLE:
                raise InvalidParameter(
                    f"Invalid 'include': {value[:60]!r} is not supported here; use one of {', '.join(INCLUDABLE)}.",
                    param="include",
                )
            if len(include) == MAX_INCLUDES:
                raise InvalidParameter(f"Invalid 'include': at most {MAX_INCLUDES} values.", param="include")
            include.append(value)
        elif key in names:
            if key in values:
                raise InvalidParameter(f"Invalid '{key}': give it once.", param=key)
            values[key] = value
        elif key not in HOST_QUERY_PARAMS:
            name = _shown_key(key)
            raise InvalidParameter(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
    return values, tuple(include)


def is_object_id(value: str) -> bool:
    """Whether `value` is an ID this door could have made: 1 to 256 letters, digits, `_` or `-`."""
    return len(value) <= MAX_ID_CHARS and _ID.fullmatch(value) is not None


# ---------------------------------------------------------------------------------------------------
# The first validation error, as OpenAI words it

_OWN_CODES = ("unsupported_type", "invalid_text", "schema_too_deep", "object_above_max_properties")
_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "list_type": "an array",
}


def _first_error(error: ValidationError) -> InvalidParameter:
    first = error.errors(include_url=False, include_input=True)[0]
    kind, ctx = first["type"], first.get("ctx") or {}
    path = [part for part in first["loc"] if not (isinstance(part, str) and part.startswith(_TAG))]
    if "field" in ctx:
        path.append(ctx["field"])
    param = _param(path)
    if kind == "missing":
        return InvalidParameter(
            f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
        )
    if kind == "unknown_parameter":
        return InvalidParameter(f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter")
    if kind == "unsupported_parameter":
        return InvalidParameter(
            f"Unsupported parameter: '{param}' is not supported by this server; leave it out.",
            param=param,
            code="unsupported_parameter",
        )
    if kind in _TYPE_NAMES:
        return InvalidParameter(
            f"Invalid type for '{param}': expected {_TYPE_NAMES[kind]}.", param=param, code="invalid_type"
        )
    if kind == "too_long":
        return InvalidParameter(
            f"Invalid '{param}': array too long. Expected an array with maximum length {ctx['max_length']}, "
            f"but got an array with length {ctx['actual_length']} instead.",
            param=param,
            code="array_above_max_length",
        )
    if kind == "too_short":
        return InvalidParameter(
            f"Invalid '{param}': empty array. Expected an array with minimum length {ctx['min_length']}.",
            param=param,
            code="empty_array",
        )
    if kind == "string_too_long":
        return InvalidParameter(
            f"Invalid '{param}': string too long. Expected a string with maximum length {ctx['max_length']}.",
            param=param,
            code="string_above_max_length",
        )
    if kind == "string_unicode":
        return InvalidParameter(
            f"Invalid '{param}': the text contains an unpaired UTF-16 surrogate.", param=param, code="invalid_text"
        )
    if kind == "string_too_short":
        return InvalidParameter(f"Invalid '{param}': empty string.", param=param, code="empty_string")
    if kind == "string_pattern_mismatch":
        shape = (
            "a function name is 1 to 64 letters, digits, underscores or dashes"
            if ctx["pattern"] == _FUNCTION_NAME_PATTERN
            else "an ID holds only letters, digits, underscores or dashes"
        )
        return InvalidParameter(f"Invalid '{param}': {shape}.", param=param)
    if kind == "literal_error":
        shown = first["input"]
        shown = repr(shown[:40]) if isinstance(shown, str) else "that value"
        return InvalidParameter(
            f"Invalid value for '{param}': {shown}. Supported values are: {ctx['expected']}.", param=param
        )
    code = kind if kind in _OWN_CODES else "invalid_value"
    return InvalidParameter(f"Invalid '{param}': {first['msg'][:1].lower()}{first['msg'][1:]}.", param=param, code=code)


def _shown_key(key: str) -> str:
    """A key of the body as an error shows it: shortened, lone surrogates escaped."""
    return key[:64].encode("utf-8", "backslashreplace").decode("utf-8") + ("..." if len(key) > 64 else "")


def _param(path: list[Any]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part != "[key]":
            text += f".{_shown_key(part)}" if text else _shown_key(part)
    return text
