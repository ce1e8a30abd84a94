"""A streamed turn: drained by a task of its own, ended by one Done or Failed whatever happens."""

from __future__ import annotations

import asyncio
import logging

import pytest

from chat.engine.errors import StorageUnavailable
from chat.engine.history import Conversation
from chat.engine.items import Usage
from chat.engine.model import TextDelta
from chat.engine.turns import Done, Failed
from chat.web.errors import status_of
from tests.fakes.engine import (
    HELLO,
    FakeModel,
    FakeTracer,
    all_events,
    no_reserve_backoff,  # noqa: F401 (a fixture: pytestmark uses it)
    service,
    started,
    turn,
)
from tests.fakes.store import FakeStore, text

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_reserve_backoff")]


async def test_a_stream_left_by_its_client_is_still_stored():
    store = FakeStore()
    gate = asyncio.Event()
    chat = service(store, FakeModel(gate=gate))
    streamed = await chat.turns.stream("app", turn())
    events = streamed.events
    assert await anext(events) == started(HELLO)
    assert await anext(events) == TextDelta(HELLO.id, "Hel")
    await events.aclose()  # the client went away
    gate.set()
    await chat.aclose()
    [(_, stored)] = store.appended
    assert text(stored.outputs) == "Hello" and stored.finish_reason == "stop"


async def test_a_stream_ends_with_done_after_the_turn_is_stored():
    store = FakeStore()
    streamed = await service(store, FakeModel()).turns.stream("app", turn())
    events = await all_events(streamed.events)
    assert events == [
        started(HELLO),
        TextDelta(HELLO.id, "Hel"),
        TextDelta(HELLO.id, "lo"),
        Done("stop", Usage(10, 2), (HELLO,), store.appended[0][1].created_at),
    ]
    # The Done says when the turn it ends was made: the time of the stored turn.
    assert len(store.appended) == 1 and store.appended[0][1].created_at


async def test_a_storage_failure_at_the_end_of_a_stream_is_its_last_event():
    store = FakeStore()

    async def refuse(*args):
        raise StorageUnavailable("Storage is unreachable; try again.")

    store.append_turn = refuse
    streamed = await service(store, FakeModel()).turns.stream("app", turn())
    events = await all_events(streamed.events)
    assert isinstance(events[-1], Failed) and events[-1].error.code == "storage_unavailable"


# -- how a stream ends ---------------------------------------------------------------------


async def test_a_stream_cut_by_shut_down_ends_with_failed_ends_its_span_stores_nothing_and_says_so(caplog):
    store = FakeStore()
    tracer = FakeTracer()
    never = asyncio.Event()  # the model never finishes
    chat = service(store, FakeModel(gate=never), tracer=tracer, shutdown_grace_seconds=0.01)
    streamed = await chat.turns.stream("app", turn())
    events = streamed.events
    assert await anext(events) == started(HELLO)
    assert await anext(events) == TextDelta(HELLO.id, "Hel")
    with caplog.at_level(logging.WARNING, logger="chat.engine.streams"):
        await chat.aclose()
    [last] = await all_events(events)
    assert isinstance(last, Failed)
    assert (last.error.code, status_of(last.error)) == ("server_shutting_down", 503)
    [span] = tracer.spans
    assert span.streamed and span.endings == ["failed: CancelledError"]
    assert store.appended == [] and store.activity == []
    key = Conversation("app", "c1").key[:16]
    assert [r.levelname for r in caplog.records if "cut" in r.getMessage() and key in r.getMessage()] == ["WARNING"]


async def test_a_model_stream_that_ends_without_finishing_ends_with_failed():
    store = FakeStore()
    tracer = FakeTracer()
    chat = service(store, FakeModel(unfinished=True), tracer=tracer)
    streamed = await chat.turns.stream("app", turn())
    events = await all_events(streamed.events)
    assert events[:-1] == [started(HELLO), TextDelta(HELLO.id, "Hel"), TextDelta(HELLO.id, "lo")]
    assert isinstance(events[-1], Failed) and events[-1].error.code == "internal_error"
    [span] = tracer.spans
    assert span.endings == ["failed: RuntimeError"]
    assert store.appended == [] and store.activity == []


async def test_each_event_reaches_the_reader_before_the_drain_reads_on_or_stores_the_turn():
    # The model's events all arrive at once (as a short answer's do, with its end in one read):
    # the reader still has every delta before the turn's commit begins, not after it.
    store = FakeStore()
    read: list[object] = []
    seen_at_commit: list[list[object]] = []
    append_turn = store.append_turn

    async def commit(*args):
        seen_at_commit.append(list(read))
        return await append_turn(*args)

    store.append_turn = commit
    streamed = await service(store, FakeModel()).turns.stream("app", turn())
    async for event in streamed.events:
        read.append(event)
    assert seen_at_commit == [[started(HELLO), TextDelta(HELLO.id, "Hel"), TextDelta(HELLO.id, "lo")]]
    assert isinstance(read[-1], Done)
