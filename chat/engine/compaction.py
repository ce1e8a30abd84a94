"""Long memory: the model summarises the turns of a window into a compaction item, which stands in
for them from then on (window.py), so a long conversation keeps what its oldest turns said
instead of dropping them.

    compact       POST /responses/compact: a window (a conversation's, a chain's, or the input's
                  alone) summarised; in a conversation, the compaction is stored as a turn of its own
    before_turn   `context_management` on a turn: once the prompt's estimate reaches the threshold,
                  the window is summarised first and the model answers from the summary; the
                  compaction is the turn's first output, stored with it

The summary is asked of the engine's one model port, as a transcript in one user message (so any
tools and roles of the window read as text, whatever the model accepts), under a prompt of its
own; the server's system prompt is not sent with it. The summarising call's tokens are the
turn's: they are added to its usage, and so to the daily quota.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace

from chat.engine.asking import Asking
from chat.engine.clock import utc_now
from chat.engine.commit import TurnWriter
from chat.engine.errors import ChatError, InvalidRequest, ModelUnavailable
from chat.engine.history import History, NewTurn
from chat.engine.ids import minting_in
from chat.engine.items import (
    Compaction,
    FunctionCall,
    FunctionCallOutput,
    ImagePart,
    Item,
    Message,
    Turn,
    Usage,
    all_stored_in,
    attachments,
    compaction,
    message,
)
from chat.engine.model import Completion, Finished, ItemStarted, Model, ModelEvent, ModelRequest
from chat.engine.placing import Placement
from chat.engine.quota import QuotaLedger, Reservation
from chat.engine.reading import Reading
from chat.engine.turns import ModelOptions, TurnInput
from chat.engine.window import prompt_items

SUMMARY_PROMPT = (
    "You compact conversations. Write a summary of the conversation you are given that lets it "
    "go on without it: every fact the user gave (names, numbers, dates, preferences), every "
    "decision and result, what was asked and answered, and what is still open. Write plain notes, "
    "in the conversation's language; leave nothing out that a later answer could need."
)
# The user message that asks for the summary; the model stand-in knows a summarising request by it.
SUMMARY_REQUEST = "Summarise the conversation below.\n\n"


@dataclass(frozen=True)
class Compacted:
    """What /responses/compact answers: the compaction, the tokens it took, and when it was made."""

    item: Compaction
    usage: Usage | None
    created_at: str
    conversation_id: str | None  # the conversation it was stored in, if any


class Compacting:
    def __init__(
        self,
        model: Model,
        ledger: QuotaLedger,
        *,
        placement: Placement,
        reading: Reading,
        asking: Asking,
        writer: TurnWriter,
    ) -> None:
        self._model = model
        self._ledger = ledger
        self._placement = placement
        self._reading = reading
        self._asking = asking
        self._writer = writer

    async def compact(self, owner: str, request: TurnInput) -> Compacted:
        """The window the request names (and its input) summarised into one compaction. In a
        conversation it is stored, after the input's items, as a turn of its own: the next turn's
        window stops there. Of a chain or of the input alone nothing is stored; a caller sends the
        compaction back as input."""
        request = await self._placement.resolved(owner, request)
        place = await self._placement.place(owner, request)
        stored = request.store and request.conversation_id is not None
        history, reservation = await self._reading.prepare(place, request)
        items = prompt_items(history.turns, request.inputs)
        if not any(not isinstance(item, Compaction) for item in items):
            await self._ledger.settle(reservation, 0)
            raise InvalidRequest(
                "There is nothing to compact: send input, or name a conversation or a previous response with turns.",
                code="nothing_to_compact",
            )
        # Stored: under IDs that name the conversation, as a turn's are, so an item_reference finds them.
        with minting_in(place.conversation.key) if stored else nullcontext():
            made, usage = await self.summarise(items, reservation, request.options)
        created_at = utc_now()
        inputs = all_stored_in(request.inputs, place.conversation.key) if stored else request.inputs
        turn = NewTurn(inputs=(*inputs, made), outputs=(), finish_reason=None, usage=usage)
        if stored:
            self._placement.check_input_fits(place.conversation, turn)
        await self._writer.store_turn(place.conversation, history, turn, reservation, store=stored)
        return Compacted(made, usage, created_at, place.conversation.id if stored else None)

    async def before_turn(
        self, history: History, request: TurnInput, reservation: Reservation | None
    ) -> tuple[History, Compaction | None, Usage | None]:
        """With a threshold that the prompt reaches, the window summarised: the history the model
        then answers from (the compaction alone), the compaction, and its tokens."""
        threshold = request.compact_threshold
        if threshold is None or self._asking.prompt_tokens(history, request) < threshold:
            return history, None, None
        items = prompt_items(history.turns, ())
        if not any(not isinstance(item, Compaction) for item in items):
            return history, None, None  # nothing but a summary already: the new input is what is long
        made, usage = await self.summarise(items, reservation)
        number = history.turns[-1].number
        summary = Turn(number=number, inputs=(), outputs=(made,), created_at=utc_now())
        return replace(history, turns=[summary]), made, usage

    async def summarise(
        self, items: Sequence[Item], reservation: Reservation | None, options: ModelOptions | None = None
    ) -> tuple[Compaction, Usage | None]:
        """The model's summary of `items`; a failed call refunds the reservation and raises. With
        `options` (of /responses/compact), the caller's instructions go into the model's context
        after the summary's prompt, and its prompt_cache_key with the request."""
        request = ModelRequest(
            system_prompt=SUMMARY_PROMPT,
            items=[message("user", SUMMARY_REQUEST + transcript(items))],
            instructions=options.instructions if options is not None else None,
            prompt_cache_key=options.prompt_cache_key if options is not None else None,
        )
        try:
            completion = await self._model.complete(request)
            summary = completion.text.strip()
            if completion.finish_reason not in (None, "stop") or not summary:
                raise ModelUnavailable(
                    f"The model did not write the summary (finish_reason {completion.finish_reason!r}); "
                    "nothing was compacted.",
                    code="compaction_failed",
                )
        except ChatError:
            await self._ledger.settle(reservation, 0)
            raise
        return compaction(summary), completion.usage


def transcript(items: Sequence[Item]) -> str:
    """The items as text, one a paragraph: what the summarising model reads. Images and files are
    not sent to be summarised (a summary is text); the transcript says where there were some."""
    lines = []
    for item in items:
        if isinstance(item, Message):
            lines.append(f"{item.role}{' (refusing)' if item.refusal else ''}: {item.text}{_unseen(item)}")
        elif isinstance(item, FunctionCall):
            lines.append(f"assistant called {item.name}({item.arguments}) as {item.call_id}")
        elif isinstance(item, FunctionCallOutput):
            lines.append(f"tool result of {item.call_id}: {item.output}{_unseen(item)}")
        else:
            lines.append(f"summary of what came before: {item.summary}")
    return "\n\n".join(lines)


def _unseen(item: Item) -> str:
    """What the transcript says of an item's images and files, which it does not hold: that they were there."""
    held = attachments(item)
    images = sum(1 for part in held if isinstance(part, ImagePart))
    files = len(held) - images
    said = [f"{n} {what}{'s' if n > 1 else ''}" for n, what in ((images, "image"), (files, "file")) if n]
    return f" [with {' and '.join(said)}, not shown here]" if said else ""


def with_compaction(completion: Completion, made: Compaction | None, usage: Usage | None) -> Completion:
    """The answer with the compaction made before it as its first output, and both calls' tokens."""
    if made is None:
        return completion
    return Completion((made, *completion.outputs), completion.finish_reason, added(completion.usage, usage))


async def streamed_with_compaction(
    events: AsyncIterator[ModelEvent], made: Compaction | None, usage: Usage | None
) -> AsyncIterator[ModelEvent]:
    """A streamed answer with the compaction made before it as its first item."""
    if made is not None:
        yield ItemStarted(made)
    async for event in events:
        if isinstance(event, Finished):
            yield Finished(with_compaction(event.completion, made, usage))
        else:
            yield event


def added(first: Usage | None, second: Usage | None) -> Usage | None:
    if first is None or second is None:
        return first or second
    return Usage(
        first.prompt_tokens + second.prompt_tokens,
        first.completion_tokens + second.completion_tokens,
        first.cached_tokens + second.cached_tokens,
        first.reasoning_tokens + second.reasoning_tokens,
    )
