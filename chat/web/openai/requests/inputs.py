"""Input items, as a response's `input` and a conversation's `items` send them: messages with
their content parts, function calls and their outputs, and item references; parsed into engine
items."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    Discriminator,
    Field,
    Tag,
    model_validator,
)
from pydantic_core import PydanticCustomError

from chat.engine.items import (
    INSTRUCTION_ROLES,
    ContentPart,
    Item,
    ItemReference,
    compaction,
    function_call,
    function_call_output,
    message,
)
from chat.web.openai.errors import InvalidParameter
from chat.web.openai.requests.attachments import InputFile, InputImage, OutputImage
from chat.web.openai.requests.strict import (
    TAG,
    UNSUPPORTED,
    Refused,
    Strict,
    Unsupported,
    by_type,
    is_none,
    is_none_or_empty,
    is_none_or_false,
    text_or,
)
from chat.web.openai.requests.values import (
    MAX_CONTENT_PARTS,
    MAX_CONVERSATION_ITEMS,
    CallId,
    FunctionName,
    ItemStatus,
    ObjectId,
    Text,
)
from chat.web.openai.sealed import unseal


class _InputText(Strict):
    refused: ClassVar[Refused] = {"prompt_cache_breakpoint": is_none}

    type: Literal["input_text"]
    text: Text


class _OutputText(Strict):
    # An assistant message sent back as it came: its empty annotations and log probabilities are echoes.
    refused: ClassVar[Refused] = {"annotations": is_none_or_empty, "logprobs": is_none_or_empty}

    type: Literal["output_text"]
    text: Text


class _Refusal(Strict):
    # An assistant message's refusal, sent back as it came: the model declined to answer.
    type: Literal["refusal"]
    refusal: Text


class _UnsupportedPart(Unsupported):
    what = "content parts"
    supported = "input_text, input_image and input_file (or output_text and refusal in assistant messages)"


class _UnsupportedOutputPart(Unsupported):
    what = "function call outputs"
    supported = "a string, or input_text, input_image and input_file parts"


Part = Annotated[
    Annotated[_InputText, Tag("=input_text")]
    | Annotated[_OutputText, Tag("=output_text")]
    | Annotated[_Refusal, Tag("=refusal")]
    | Annotated[InputImage, Tag("=input_image")]
    | Annotated[InputFile, Tag("=input_file")]
    | Annotated[_UnsupportedPart, Tag("=unsupported"), UNSUPPORTED],
    Discriminator(by_type("input_text", "output_text", "refusal", "input_image", "input_file")),
]
Content = Annotated[
    Annotated[Text, Tag("=text")]
    | Annotated[list[Part], Field(max_length=MAX_CONTENT_PARTS, fail_fast=True), Tag("=other")],
    Discriminator(text_or),
]
OutputPart = Annotated[
    Annotated[_InputText, Tag("=input_text")]
    | Annotated[OutputImage, Tag("=input_image")]
    | Annotated[InputFile, Tag("=input_file")]
    | Annotated[_UnsupportedOutputPart, Tag("=unsupported"), UNSUPPORTED],
    Discriminator(by_type("input_text", "input_image", "input_file")),
]
Output = Annotated[
    Annotated[Text, Tag("=text")]
    | Annotated[list[OutputPart], Field(max_length=MAX_CONTENT_PARTS, fail_fast=True), Tag("=other")],
    Discriminator(text_or),
]


_KINDS = {"user": "input_text, input_image and input_file", "system": "input_text", "developer": "input_text"}


def _joined(content: str | list[Any]) -> str:
    """The text of a string or of text parts, joined as they are: as the model reads a list of parts."""
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content if isinstance(part, _InputText | _OutputText))


def _content_parts(content: str | list[Any]) -> tuple[ContentPart, ...]:
    """The parts of content that holds images or files, in order (text parts as their text); else ()."""
    if isinstance(content, str) or not any(isinstance(p, InputImage | InputFile) for p in content):
        return ()
    return tuple(
        part.part() if isinstance(part, InputImage | InputFile) else part.text
        for part in content
        if isinstance(part, InputImage | InputFile | _InputText)
    )


class _MessageIn(Strict):
    refused: ClassVar[Refused] = {"phase": is_none}

    type: Literal["message"] | None = "message"  # left out, or null: a message
    role: Literal["user", "assistant", "system", "developer"]
    content: Content
    id: ObjectId | None = None
    status: ItemStatus | None = None

    @model_validator(mode="after")
    def _parts_fit_the_role(self) -> _MessageIn:
        if isinstance(self.content, str):
            return self
        if self.role != "assistant":
            # Images and files go to the model in user messages (Chat Completions' system and
            # developer messages hold text alone).
            allowed = (_InputText, InputImage, InputFile) if self.role == "user" else _InputText
            for index, part in enumerate(self.content):
                if not isinstance(part, allowed):
                    raise PydanticCustomError(
                        "invalid_value",
                        "{role} messages hold {kinds} parts; output_text and refusal are the assistant's",
                        {"field": f"content[{index}].type", "role": self.role, "kinds": _KINDS[self.role]},
                    )
        elif any(isinstance(part, InputImage | InputFile) for part in self.content):
            index = next(i for i, part in enumerate(self.content) if isinstance(part, InputImage | InputFile))
            raise PydanticCustomError(
                "invalid_value",
                "images and files go in user messages",
                {"field": f"content[{index}].type"},
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
    def parts(self) -> tuple[ContentPart, ...]:
        """Its content parts, when it holds images or files; else ()."""
        return _content_parts(self.content)

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


class _FunctionCallIn(Strict):
    refused: ClassVar[Refused] = {"caller": is_none, "namespace": is_none, "async": is_none_or_false}

    type: Literal["function_call"]
    call_id: CallId
    name: FunctionName
    arguments: Text
    id: ObjectId | None = None
    status: ItemStatus | None = None


class _FunctionCallOutputIn(Strict):
    refused: ClassVar[Refused] = {"caller": is_none, "name": is_none, "namespace": is_none}

    type: Literal["function_call_output"]
    call_id: CallId
    output: Output
    id: ObjectId | None = None
    status: ItemStatus | None = None

    @property
    def text(self) -> str:
        return _joined(self.output)

    @property
    def parts(self) -> tuple[ContentPart, ...]:
        """Its content parts, when it holds images or files; else ()."""
        return _content_parts(self.output)


class _ItemReferenceIn(Strict):
    # OpenAI's ItemReferenceParam: its `type` may be left out (then an item with an `id` and no
    # `role` is one).
    type: Literal["item_reference"] | None = "item_reference"
    id: ObjectId


class _CompactionIn(Strict):
    # A compaction item this server made, sent back: its encrypted_content holds the summary.
    type: Literal["compaction"]
    encrypted_content: Text
    id: ObjectId | None = None
    created_by: Text | None = None  # an echo of the output item


class _UnsupportedItem(Unsupported):
    what = "input items"
    supported = "message, function_call, function_call_output, compaction or item_reference"


def _input_kind(value: Any) -> str:
    """The kind of an input item: its `type`; with none, a message, or an item reference if it has
    an `id` and no `role`."""
    if isinstance(value, dict) and value.get("type") is None and "id" in value and "role" not in value:
        return TAG + "item_reference"
    return by_type("message", "function_call", "function_call_output", "compaction", "item_reference")(value)


InputItem = Annotated[
    Annotated[_MessageIn, Tag("=message")]
    | Annotated[_FunctionCallIn, Tag("=function_call")]
    | Annotated[_FunctionCallOutputIn, Tag("=function_call_output")]
    | Annotated[_CompactionIn, Tag("=compaction")]
    | Annotated[_ItemReferenceIn, Tag("=item_reference")]
    | Annotated[_UnsupportedItem, Tag("=unsupported"), UNSUPPORTED],
    Discriminator(_input_kind),
]


ConversationItems = Annotated[list[InputItem], Field(max_length=MAX_CONVERSATION_ITEMS, fail_fast=True)]


def engine_items(
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
            items.append(message(item.role, item.text, refusal=item.refusal, parts=item.parts))
        elif isinstance(item, _FunctionCallIn):
            items.append(function_call(item.call_id, item.name, item.arguments))
        elif isinstance(item, _CompactionIn):
            items.append(compaction(unseal(item.encrypted_content, f"{where}[{index}].encrypted_content")))
        else:
            items.append(function_call_output(item.call_id, item.text, parts=item.parts))
    return tuple(items)


def item_references(parsed: list[Any]) -> tuple[ItemReference, ...]:
    """The item references among parsed input items, each with its place among them."""
    return tuple(
        ItemReference(index, item.id) for index, item in enumerate(parsed) if isinstance(item, _ItemReferenceIn)
    )
