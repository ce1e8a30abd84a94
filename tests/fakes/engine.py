"""The engine composed over fakes of its own protocols (store, model, tracer), and the turns the
unit tests of its use cases send."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from chat.bootstrap import Engine, Policy, compose
from chat.engine import quota as quota_module
from chat.engine.errors import ModelUnavailable
from chat.engine.items import FunctionCall, Message, Turn, Usage, message
from chat.engine.model import ArgumentsDelta, Completion, Finished, ItemStarted, ModelEvent, ModelRequest, TextDelta
from chat.engine.ports import Tracer
from chat.engine.tokens import estimate_tokens
from chat.engine.turns import StreamEvent, TurnInput
from tests.fakes.store import FakeStore

CREATED = "2026-01-01T00:00:00Z"
HELLO = Message("msg_hello", "assistant", "Hello")  # what the fake model answers unless told otherwise


@pytest.fixture
def no_reserve_backoff(monkeypatch):
    """Turns kept out by turns in flight try again at once here: the fakes need no waiting."""
    monkeypatch.setattr(quota_module, "RESERVE_BACKOFF_SECONDS", 0)


def stored_turn(number: int, user: str, answer: str) -> Turn:
    return Turn(
        number=number,
        inputs=(Message(f"msg_u{number}", "user", user),),
        outputs=(Message(f"msg_a{number}", "assistant", answer),),
        created_at=CREATED,
        finish_reason="stop",
        usage=Usage(1, 1),
    )


def prompt(request: ModelRequest) -> list[dict[str, str]]:
    """A request of messages only as the model reads it: the system prompt, then each message."""
    messages = [{"role": "system", "content": request.system_prompt}]
    for item in request.items:
        assert isinstance(item, Message), item
        messages.append({"role": item.role, "content": item.text})
    return messages


@dataclass
class FakeModel:
    name: str = "fake"
    failures: list[Exception] = field(default_factory=list)
    answers: list[Completion] = field(default_factory=list)  # what it answers, in turn; then HELLO
    requests: list[ModelRequest] = field(default_factory=list)
    gate: asyncio.Event | None = None  # streaming waits on it after the first piece of text
    cut: ModelUnavailable | None = None  # the stream fails with it after its pieces
    unfinished: bool = False  # the stream ends after its pieces without a Finished

    async def complete(self, request: ModelRequest) -> Completion:
        self.requests.append(request)
        if self.failures:
            raise self.failures.pop(0)
        return self._answer()

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        self.requests.append(request)
        if self.failures:
            raise self.failures.pop(0)
        return self._events(self._answer())

    async def check(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def _answer(self) -> Completion:
        return self.answers.pop(0) if self.answers else Completion((HELLO,), "stop", Usage(10, 2))

    async def _events(self, completion: Completion) -> AsyncIterator[ModelEvent]:
        for item in completion.outputs:
            if isinstance(item, Message):
                yield ItemStarted(replace(item, text=""))
                for index, piece in enumerate(pieces(item.text)):
                    yield TextDelta(item.id, piece)
                    if index == 0 and self.gate is not None:
                        await self.gate.wait()
            elif isinstance(item, FunctionCall):
                yield ItemStarted(replace(item, arguments=""))
                yield ArgumentsDelta(item.id, item.arguments)
        if self.cut is not None:
            raise self.cut
        if not self.unfinished:
            yield Finished(completion)


def pieces(text: str) -> list[str]:
    """Text as the fake model streams it: three characters at a time ("Hel", "lo")."""
    return [text[i : i + 3] for i in range(0, len(text), 3)]


@dataclass
class FakeSpan:
    conversation_key: str
    streamed: bool
    endings: list[str] = field(default_factory=list)  # how the span ended, each time it did

    def succeed(self, *, finish_reason: str | None, usage: Usage | None, replayed: bool = False) -> None:
        self.endings.append(f"succeeded: {finish_reason}")

    def fail(self, error: BaseException) -> None:
        self.endings.append(f"failed: {type(error).__name__}")


@dataclass
class FakeTracer:
    spans: list[FakeSpan] = field(default_factory=list)

    def turn(self, conversation_key: str, model: str, *, streamed: bool) -> FakeSpan:
        span = FakeSpan(conversation_key, streamed)
        self.spans.append(span)
        return span


def service(
    store: FakeStore,
    model: FakeModel,
    *,
    tracer: Tracer | None = None,
    shutdown_grace_seconds: float = 30.0,
    **policy: Any,
) -> Engine:
    # The fake store plays the history, the conversation list and the token counts.
    if policy.get("daily_token_quota"):
        policy.setdefault("max_answer_tokens", CAP)
    policy.setdefault("history_token_budget", 1000)
    return compose(
        store,
        store,
        store,
        model,
        Policy(system_prompt="sys", **policy),
        tracer=tracer,
        shutdown_grace_seconds=shutdown_grace_seconds,
    )


CAP = 20
# What a turn "hi" reserves with no history: the estimates of "sys" and "hi", and the answer cap.
RESERVED = estimate_tokens("sys") + estimate_tokens("hi") + CAP


def turn(content="hi", conversation_id="c1", key=None) -> TurnInput:
    return TurnInput((message("user", content),), conversation_id, idempotency_key=key)


def started(item: Message) -> ItemStarted:
    return ItemStarted(replace(item, text=""))


async def all_events(events: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    # Bounded, so a stream that never ends fails the test instead of hanging it.
    async def read() -> list[StreamEvent]:
        return [event async for event in events]

    return await asyncio.wait_for(read(), timeout=10)
