"""What a turn is asked and what it answers: the request, where it goes, the answer, a stream's events.

A turn is its input items (a user message; a caller's function call outputs) and the model's output
items (a message, function calls), stored together in one write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

from chat.engine.clock import utc_now
from chat.engine.errors import ChatError
from chat.engine.history import Conversation, NewTurn, ResponseRecord, request_hash
from chat.engine.items import Compaction, FunctionCall, Item, ItemReference, Message, Turn, TurnRef, Usage, message_text
from chat.engine.model import ArgumentsDelta, FunctionTool, ItemStarted, OutputFormat, TextDelta, ToolChoice


@dataclass(frozen=True)
class ModelOptions:
    """What a caller asks of the model besides the items: its instructions (sent after the server's
    system prompt), its tools, sampling options, the answer's format, verbosity and reasoning
    effort. The chat routes send none."""

    instructions: str | None = None
    tools: tuple[FunctionTool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = None  # lowered to the server's cap, never raised
    temperature: float | None = None
    top_p: float | None = None
    user: str | None = None
    prompt_cache_key: str | None = None
    output_format: OutputFormat | None = None
    verbosity: str | None = None
    reasoning_effort: str | None = None


@dataclass(frozen=True)
class TurnInput:
    """What one request asks for: new input items, in a conversation or a new one, and how to answer.

    A response of the OpenAI-compatible door also says what to keep of it (`response`, opaque
    here) and may continue a response (`previous_response_id`) rather than a conversation; it
    names only conversations that exist (`must_exist`), and may ask that nothing be stored, that
    nothing of the history be left out (`truncate` false), or for the model's options.
    """

    inputs: tuple[Item, ...]
    conversation_id: str | None
    idempotency_key: str | None = None
    references: tuple[ItemReference, ...] = ()  # stored items the input names, resolved into `inputs`
    options: ModelOptions = ModelOptions()
    response: str | None = None
    previous_response_id: str | None = None
    store: bool = True
    must_exist: bool = False
    truncate: bool = True
    compact_threshold: int | None = None  # the prompt's estimate at which the window is compacted first

    @property
    def text(self) -> str:
        """The text of the input messages: what names a new conversation."""
        return message_text(self.inputs)


@dataclass(frozen=True)
class Place:
    """Where a turn goes: its conversation (or chain), the turn it continues in a chain, and the
    ID of the response it answers."""

    conversation: Conversation
    continues: TurnRef | None = None
    response_id: str | None = None


@dataclass(frozen=True)
class Answer:
    conversation_id: str
    outputs: tuple[Item, ...]
    finish_reason: str | None
    usage: Usage | None
    replayed: bool = False
    response_id: str | None = None
    created_at: str | None = None  # when the turn was made (stored, if it is kept)

    @property
    def text(self) -> str:
        return message_text(self.outputs)


@dataclass(frozen=True)
class Done:
    """The last event of a stream: the turn is stored."""

    finish_reason: str | None
    usage: Usage | None
    outputs: tuple[Item, ...] = ()
    created_at: str | None = None


@dataclass(frozen=True)
class Failed:
    error: ChatError


StreamEvent = ItemStarted | TextDelta | ArgumentsDelta | Done | Failed


@dataclass(frozen=True)
class StreamedAnswer:
    conversation_id: str
    events: AsyncIterator[StreamEvent]
    replayed: bool = False
    response_id: str | None = None
    stop: Callable[[], None] | None = None  # end the answer now: nothing more is asked, nothing stored


def new_turn(
    place: Place, request: TurnInput, outputs: tuple[Item, ...], finish_reason: str | None, usage: Usage | None
) -> NewTurn:
    """The turn to store: the request's inputs, the model's outputs, and the response it answers."""
    response = None
    if request.response is not None and place.response_id is not None:
        response = ResponseRecord(place.response_id, request.response)
    return NewTurn(
        inputs=request.inputs,
        outputs=outputs,
        finish_reason=finish_reason,
        usage=usage,
        created_at=utc_now(),
        idempotency_key=request.idempotency_key,
        request_hash=request_hash(request.inputs) if request.idempotency_key else None,
        response=response,
        continues=place.continues,
    )


def replayed(conversation: Conversation, turn: Turn) -> Answer:
    """The answer of a turn an Idempotency-Key already stored."""
    return Answer(
        conversation.id,
        turn.outputs,
        turn.finish_reason,
        turn.usage,
        replayed=True,
        response_id=turn.response_id,
        created_at=turn.created_at,
    )


async def replay_events(turn: Turn) -> AsyncIterator[StreamEvent]:
    """A stored turn's answer as the events of a stream."""
    for item in turn.outputs:
        if isinstance(item, Message):
            yield ItemStarted(replace(item, text=""))
            if item.text:
                yield TextDelta(item.id, item.text)
        elif isinstance(item, FunctionCall):
            yield ItemStarted(FunctionCall(item.id, item.call_id, item.name, ""))
            if item.arguments:
                yield ArgumentsDelta(item.id, item.arguments)
        elif isinstance(item, Compaction):
            yield ItemStarted(item)  # whole: a compaction is made before the answer, never streamed
    yield Done(turn.finish_reason, turn.usage, turn.outputs, turn.created_at)
