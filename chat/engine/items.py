"""What a conversation is made of: items, gathered into turns.

A turn is an ordered list of items: its input items (what the caller sent), then its output items
(what the model answered). A turn may have only input items, when a caller adds items by hand.

    Message             role `user` or `assistant`, text; an assistant's may be a refusal: its
                        text is then the model's refusal to answer, not an answer. A user's may
                        hold content parts, in order: text, images (`ImagePart`) and files
                        (`FilePart`); its text is then the text of its text parts, joined
    FunctionCall        the model asks the caller to run a tool: call ID, tool name, JSON arguments
    FunctionCallOutput  the caller's result of that call: call ID, output text; it may hold
                        content parts as a user's message does (a tool that looked at a page
                        returns a screenshot), its text then the text of its text parts
    Compaction          the model's summary of the conversation before it, which stands in for
                        everything before it: the window stops at the newest (compaction.py)

Every item has an ID, made when the item is made and stored with it, so it is stable and unique in
its conversation whatever number its turn is finally stored under.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from chat.engine.ids import item_partition, new_item_id

Role = Literal["user", "assistant", "system", "developer"]
ROLES: tuple[Role, ...] = ("user", "assistant", "system", "developer")
# A caller's system and developer messages: instructions, sent after the server's own system prompt.
INSTRUCTION_ROLES: tuple[Role, ...] = ("system", "developer")


Detail = Literal["low", "high", "auto"]
DETAILS: tuple[Detail, ...] = ("low", "high", "auto")
# The largest image or file one content part may hold, decoded: a documented limit of every door.
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class ImagePart:
    """An image: an https URL the model fetches, or a data: URL that holds it."""

    url: str
    detail: Detail = "auto"
    kind: Literal["image"] = "image"

    @property
    def size(self) -> int:
        """Its decoded size in bytes when it is a data URL; 0 for an https URL."""
        return attachment_bytes(self.url)


@dataclass(frozen=True)
class FilePart:
    """A file the model reads (a PDF, say), held whole in a base64 data: URL."""

    data: str  # data:<media type>;base64,<data>
    filename: str
    kind: Literal["file"] = "file"

    @property
    def size(self) -> int:
        """Its decoded size in bytes, from the length of its base64."""
        return attachment_bytes(self.data)


ContentPart = str | ImagePart | FilePart  # a text part is its text


@dataclass(frozen=True)
class Message:
    id: str
    role: Role
    text: str
    refusal: bool = False  # an assistant's refusal to answer (Chat Completions' `refusal`), its text the reason
    kind: Literal["message"] = "message"
    # Its content parts in order, when it holds more than text (then `text` is theirs, joined); else ().
    parts: tuple[ContentPart, ...] = ()


def attachment_bytes(url: str) -> int:
    """The decoded size of a base64 data URL's data (0 for any other URL)."""
    if not url.startswith("data:"):
        return 0
    data = url.partition(",")[2]
    return len(data) * 3 // 4 - data[-2:].count("=")


@dataclass(frozen=True)
class FunctionCall:
    id: str
    call_id: str
    name: str
    arguments: str  # JSON text, as the model wrote it
    kind: Literal["function_call"] = "function_call"


@dataclass(frozen=True)
class FunctionCallOutput:
    id: str
    call_id: str
    output: str
    kind: Literal["function_call_output"] = "function_call_output"
    # Its content parts in order, when it holds images or files (then `output` is its text parts'
    # text, joined); else ().
    parts: tuple[ContentPart, ...] = ()


@dataclass(frozen=True)
class Compaction:
    id: str
    summary: str  # the model's, of what came before
    kind: Literal["compaction"] = "compaction"


Item = Message | FunctionCall | FunctionCallOutput | Compaction


def attachments(item: Item) -> tuple[ImagePart | FilePart, ...]:
    """The images and files an item holds: a message's or a function call output's."""
    if isinstance(item, Message | FunctionCallOutput):
        return tuple(part for part in item.parts if not isinstance(part, str))
    return ()


@dataclass(frozen=True)
class ItemReference:
    """An input item named by its ID alone (OpenAI's `item_reference`): an item the server stored
    for the same owner, sent again in the input's place `position`."""

    position: int
    id: str


def stored_in(item: Item, partition: str) -> Item:
    """The item under an ID that names `partition`, the conversation it is stored in (an input
    the door minted before the turn was placed): kept as it is if its ID names it already."""
    if item_partition(item.id) == partition:
        return item
    return replace(item, id=new_item_id(item.kind, partition))


def all_stored_in(items: Iterable[Item], partition: str) -> tuple[Item, ...]:
    """Each item under an ID that names `partition` (stored_in): a turn's inputs, or the items a
    conversation is created with or given, so an item_reference finds them by their IDs alone."""
    return tuple(stored_in(item, partition) for item in items)


def copied(item: Item) -> Item:
    """The item under an ID of its own: what a turn that refers to a stored item stores."""
    if isinstance(item, Message):
        return replace(item, id=new_item_id("message"))
    if isinstance(item, FunctionCall):
        return function_call(item.call_id, item.name, item.arguments)
    if isinstance(item, Compaction):
        return compaction(item.summary)
    return function_call_output(item.call_id, item.output, parts=item.parts)


def message(role: Role, text: str, *, refusal: bool = False, parts: tuple[ContentPart, ...] = ()) -> Message:
    """A new message; `parts` only when they hold more than text (its text is then theirs)."""
    if any(not isinstance(part, str) for part in parts):
        text = "".join(part for part in parts if isinstance(part, str))
        return Message(new_item_id("message"), role, text, refusal, parts=parts)
    return Message(new_item_id("message"), role, text, refusal)


def function_call(call_id: str, name: str, arguments: str) -> FunctionCall:
    return FunctionCall(new_item_id("function_call"), call_id, name, arguments)


def function_call_output(call_id: str, output: str, *, parts: tuple[ContentPart, ...] = ()) -> FunctionCallOutput:
    """A new output; `parts` only when they hold more than text (its output is then their text)."""
    if any(not isinstance(part, str) for part in parts):
        text = "".join(part for part in parts if isinstance(part, str))
        return FunctionCallOutput(new_item_id("function_call_output"), call_id, text, parts=parts)
    return FunctionCallOutput(new_item_id("function_call_output"), call_id, output)


def compaction(summary: str) -> Compaction:
    return Compaction(new_item_id("compaction"), summary)


def message_text(items: Iterable[Item]) -> str:
    """The text of the messages among `items`, refusals' included: what a reader of the
    conversation sees of them."""
    return "".join(item.text for item in items if isinstance(item, Message))


def item_text(item: Item) -> str:
    """The text of an item that the model reads: what its token estimate is made from."""
    if isinstance(item, Message):
        return item.text
    if isinstance(item, FunctionCall):
        return item.name + item.arguments
    if isinstance(item, Compaction):
        return item.summary
    return item.output


@dataclass(frozen=True)
class Usage:
    """Token usage of one answer, as the model reports it."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0  # of the prompt's, read from the provider's prompt cache
    reasoning_tokens: int = 0  # of the completion's, spent reasoning before the answer

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class TurnRef:
    """One turn of one of the owner's conversations (or response chains)."""

    conversation_id: str
    number: int


@dataclass(frozen=True)
class Turn:
    """A stored turn: its number in the conversation, its items, and how its answer ended.

    A turn of a response chain says which turn it continues (`continues`, None for the first of a
    chain); a conversation's turns continue the one before them. A turn made by a response of the
    OpenAI-compatible door has that response's ID.
    """

    number: int
    inputs: tuple[Item, ...]
    outputs: tuple[Item, ...]
    created_at: str
    finish_reason: str | None = None
    usage: Usage | None = None
    response_id: str | None = None
    continues: TurnRef | None = None

    @property
    def items(self) -> tuple[Item, ...]:
        return self.inputs + self.outputs
