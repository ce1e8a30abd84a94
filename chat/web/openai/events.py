"""A streamed response as OpenAI sends it: server-sent events, from the engine's stream events.

    response.created, response.in_progress                 the skeleton, at once
    per output item, in order:
      response.output_item.added
      a message:  response.content_part.added, response.output_text.delta ...,
                  response.output_text.done, response.content_part.done
      a refusal:  response.content_part.added, response.refusal.delta ...,
                  response.refusal.done, response.content_part.done
      a call:     response.function_call_arguments.delta ..., response.function_call_arguments.done
      response.output_item.done
    response.completed | response.incomplete | response.failed

Each event is `event: <type>` and `data: <json>` with the same `type` and a `sequence_number`
counting from 0. An item is done when the next one starts or the answer ends, as OpenAI orders them.

The input is the engine's stream: ItemStarted, TextDelta and ArgumentsDelta as the model produces
them (a Finished the engine passes through is ignored), then one outcome: Done once the turn is
settled (stored, or not to be), or Failed. A ChatError raised by the stream counts as Failed. The
done events and the final response show the Done's completion, the truth of what was answered.
The stream is not closed here when the client goes: the engine decides what becomes of its answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from chat.engine.clock import epoch_seconds
from chat.engine.items import FunctionCall, Item, Message
from chat.engine.model import ArgumentsDelta, Completion, Finished, ItemStarted, TextDelta
from chat.engine.turns import Done as TurnDone
from chat.engine.turns import Failed as TurnFailed
from chat.engine.turns import StreamEvent as TurnEvent
from chat.web.openai.errors import ChatError
from chat.web.openai.objects import (
    ItemStatus,
    ResponseHead,
    content_part,
    fail,
    finish,
    item_object,
    response_object,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Done:
    """The answer is settled: what the model answered, and when the response completed."""

    completion: Completion
    completed_at: int | None = None


@dataclass(frozen=True)
class Failed:
    """The answer failed after the response was created."""

    error: ChatError


StreamEvent = ItemStarted | TextDelta | ArgumentsDelta | Finished | Done | Failed


def sse(data: dict[str, Any]) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def response_events(
    head: ResponseHead | Mapping[str, Any], events: AsyncIterable[StreamEvent]
) -> AsyncIterator[bytes]:
    """The events of a response: `head` is its head, or its in-progress skeleton (a stored one)."""
    skeleton = response_object(head) if isinstance(head, ResponseHead) else dict(head)
    stream = _Stream(skeleton)
    yield stream.event("response.created", response=skeleton)
    yield stream.event("response.in_progress", response=skeleton)
    try:
        async for event in events:
            if isinstance(event, Done):
                for chunk in stream.finish(event):
                    yield chunk
                return
            if isinstance(event, Failed):
                yield stream.fail(event.error)
                return
            if not isinstance(event, Finished):
                for chunk in stream.add(event):
                    yield chunk
    except ChatError as e:
        yield stream.fail(e)
        return
    log.error("the engine's stream ended without an outcome: response %s", skeleton["id"])
    yield stream.fail(ChatError("The answer ended before it was settled.", code="server_error"))


@dataclass
class _Open:
    """An output item being streamed: its index, the item as it started, and its text so far."""

    index: int
    item: Item
    chunks: list[str] = field(default_factory=list)


@dataclass
class _Stream:
    """One streamed response: its next sequence number, the items it has shown, and the one still open."""

    skeleton: dict[str, Any]
    sequence: int = 0
    started: list[_Open] = field(default_factory=list)
    open: _Open | None = None

    def event(self, kind: str, **data: Any) -> bytes:
        chunk = sse({"type": kind, "sequence_number": self.sequence, **data})
        self.sequence += 1
        return chunk

    def add(self, event: ItemStarted | TextDelta | ArgumentsDelta) -> list[bytes]:
        if isinstance(event, ItemStarted):
            chunks = self._close(None)
            self.open = _Open(len(self.started), event.item)
            self.started.append(self.open)
            return chunks + self._begin(self.open)
        known = self._find(event.item_id)
        if known is None:
            log.warning("a delta for an item that never started: response %s", self.skeleton["id"])
            return []
        if isinstance(event, TextDelta):
            known.chunks.append(event.text)
            return [self._delta(known, event.text)]
        known.chunks.append(event.delta)
        return [self.event("response.function_call_arguments.delta", **self._where(known), delta=event.delta)]

    def finish(self, done: Done) -> list[bytes]:
        completion = done.completion
        final = {item.id: item for item in completion.outputs}
        chunks: list[bytes] = []
        # Items the answer has but the stream never started are shown whole, after the others.
        for item in completion.outputs:
            if self._find(item.id) is None:
                chunks += self._close(final)
                self.open = _Open(len(self.started), item)
                self.started.append(self.open)
                chunks += self._begin(self.open)
        response = finish(self.skeleton, _in_stream_order(completion, self.started), completed_at=done.completed_at)
        statuses: dict[str, ItemStatus] = {item["id"]: item.get("status", "completed") for item in response["output"]}
        chunks += self._close(final, statuses.get(self.open.item.id, "completed") if self.open else "completed")
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        return [*chunks, self.event(kind, response=response)]

    def fail(self, error: ChatError) -> bytes:
        outputs = [self._so_far(known) for known in self.started]
        return self.event("response.failed", response=fail(self.skeleton, error, outputs))

    def _begin(self, known: _Open) -> list[bytes]:
        """An item's added events: empty, as OpenAI adds them; text it started with follows as a delta."""
        item = known.item
        shown = item_object(item, "in_progress")
        if isinstance(item, Message):
            shown["content"] = []
        elif isinstance(item, FunctionCall):
            shown["arguments"] = ""
        chunks = [self.event("response.output_item.added", output_index=known.index, item=shown)]
        if isinstance(item, Message):
            chunks.append(self._text_event(known, "response.content_part.added", part=content_part(item, "")))
            if item.text:
                chunks.append(self._delta(known, item.text))
        elif isinstance(item, FunctionCall) and item.arguments:
            chunks.append(
                self.event("response.function_call_arguments.delta", **self._where(known), delta=item.arguments)
            )
        return chunks

    def _close(self, final: dict[str, Item] | None, status: ItemStatus = "completed") -> list[bytes]:
        """The open item's done events: as the answer has it once it is known, else as streamed so far."""
        known, self.open = self.open, None
        if known is None:
            return []
        item = (final or {}).get(known.item.id) or self._so_far(known)
        chunks: list[bytes] = []
        if isinstance(item, Message) and item.refusal:
            chunks.append(self._text_event(known, "response.refusal.done", refusal=item.text))
            chunks.append(self._text_event(known, "response.content_part.done", part=content_part(item)))
        elif isinstance(item, Message):
            chunks.append(self._text_event(known, "response.output_text.done", text=item.text, logprobs=[]))
            chunks.append(self._text_event(known, "response.content_part.done", part=content_part(item)))
        elif isinstance(item, FunctionCall):
            chunks.append(
                self.event(
                    "response.function_call_arguments.done",
                    **self._where(known),
                    name=item.name,
                    arguments=item.arguments,
                )
            )
        chunks.append(self.event("response.output_item.done", output_index=known.index, item=item_object(item, status)))
        return chunks

    def _delta(self, known: _Open, text: str) -> bytes:
        """More of a message's text, or of its refusal."""
        item = known.item
        if isinstance(item, Message) and item.refusal:
            return self._text_event(known, "response.refusal.delta", delta=text)
        return self._text_event(known, "response.output_text.delta", delta=text, logprobs=[])

    def _text_event(self, known: _Open, kind: str, **data: Any) -> bytes:
        return self.event(kind, **self._where(known), content_index=0, **data)

    @staticmethod
    def _where(known: _Open) -> dict[str, Any]:
        return {"item_id": known.item.id, "output_index": known.index}

    def _find(self, item_id: str) -> _Open | None:
        return next((known for known in self.started if known.item.id == item_id), None)

    @staticmethod
    def _so_far(known: _Open) -> Item:
        item = known.item
        if isinstance(item, Message):
            return replace(item, text=item.text + "".join(known.chunks))
        if isinstance(item, FunctionCall):
            return FunctionCall(item.id, item.call_id, item.name, item.arguments + "".join(known.chunks))
        return item


def _in_stream_order(completion: Completion, started: list[_Open]) -> Completion:
    """The completion with its outputs in the order the stream showed them (their output_index)."""
    final = {item.id: item for item in completion.outputs}
    ordered = tuple(final[known.item.id] for known in started if known.item.id in final)
    return Completion(ordered, completion.finish_reason, completion.usage)


async def door_events(events: AsyncIterator[TurnEvent]) -> AsyncIterator[StreamEvent]:
    """The engine's stream events as the event writer reads them: its outcome with the answer's time."""
    async for event in events:
        if isinstance(event, TurnDone):
            completed_at = epoch_seconds(event.created_at) if event.created_at else None
            yield Done(Completion(event.outputs, event.finish_reason, event.usage), completed_at)
        elif isinstance(event, TurnFailed):
            yield Failed(event.error)
        else:
            yield event
