"""Concurrent turns on one conversation, end to end: every turn is stored whole, none is lost,
none interleaves with another, and the conversation list counts them all.

The model stand-in answers `Echo #k: <user text>`, k being the number of history messages it was
sent, so every stored answer names the user message it belongs to and the history its turn read.
`[[sleep:S]]` holds each answer back so that the turns overlap.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.support.wire import ECHO

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

TURNS = 16


async def stored_messages(api, session: str) -> list[dict]:
    """The whole history, oldest first, read a small page at a time to exercise the cursor."""
    pages: list[list[dict]] = []
    cursor = None
    while True:
        params = {"limit": 7} | ({"cursor": cursor} if cursor else {})
        reply = await api.messages(session, **params)
        assert reply.status == 200, reply.body
        pages.append(reply.body["messages"])
        cursor = reply.body["next"]
        if cursor is None:
            return [message for page in reversed(pages) for message in page]


async def listed(api, session: str) -> dict:
    """The conversation's entry in the caller's conversation list."""
    cursor = None
    while True:
        reply = await api.conversations(limit=200, **({"cursor": cursor} if cursor else {}))
        assert reply.status == 200, reply.body
        for entry in reply.body["conversations"]:
            if entry["id"] == session:
                return entry
        cursor = reply.body["next"]
        if cursor is None:
            raise AssertionError(f"{session!r} is not in the conversation list")


def answer_of(reply) -> str:
    assert reply.status == 200, reply.body
    if reply.lines:
        assert "error" not in reply.lines[-1], reply.lines[-1]
        assert reply.lines[-1]["context"]["finish_reason"] == "stop"
        return reply.text
    return reply.body["message"]["content"]


def assert_whole_turns(messages: list[dict], answers: dict[str, str]) -> None:
    """Pairs of user message and its own answer, each answer computed from the turns before it."""
    assert [m["role"] for m in messages] == ["user", "assistant"] * (len(messages) // 2)
    for position in range(0, len(messages), 2):
        user, assistant = messages[position]["content"], messages[position + 1]["content"]
        echo = ECHO.fullmatch(assistant)
        assert echo is not None and echo[2] == user, (user, assistant)
        # A turn stored at this position read at most the turns stored before it.
        assert int(echo[1]) <= position, (position, assistant)
        if user in answers:
            assert assistant == answers[user]


def assert_model_saw_stored_prefixes(standins, marker: str, messages: list[dict]) -> None:
    """Each turn's model request carried a prefix of the final history: nothing it read was
    later rewritten, reordered or split."""
    stored = [{"role": m["role"], "content": m["content"]} for m in messages]
    requests = [e["body"]["messages"] for e in standins.requests() if marker in e["body"]["messages"][-1]["content"]]
    assert len(requests) == TURNS
    for sent in requests:
        history = sent[1:-1]
        assert history == stored[: len(history)]


async def race(api, session: str, marker: str, *, sleep: float) -> tuple[list[str], dict[str, str]]:
    """TURNS simultaneous turns, every other one streamed; their contents and answers."""
    contents = [f"turn {i} {marker} [[sleep:{sleep}]]" for i in range(TURNS)]
    replies = await asyncio.gather(
        *(api.chat(content, session, stream=i % 2 == 1) for i, content in enumerate(contents))
    )
    answers = {content: answer_of(reply) for content, reply in zip(contents, replies, strict=True)}
    return contents, answers


async def test_concurrent_turns_on_one_conversation_are_all_stored_whole_and_in_order(api, standins):
    session = f"race-{uuid.uuid4().hex}"
    opening = await api.chat("the opening turn", session)
    assert opening.status == 200
    marker = f"[{uuid.uuid4().hex}]"

    contents, answers = await race(api, session, marker, sleep=0.2)

    messages = await stored_messages(api, session)
    assert len(messages) == 2 + 2 * TURNS
    assert [m["content"] for m in messages[:2]] == ["the opening turn", "Echo #0: the opening turn"]
    assert_whole_turns(messages, answers)
    assert sorted(m["content"] for m in messages[2::2]) == sorted(contents)
    assert_model_saw_stored_prefixes(standins, marker, messages)
    entry = await listed(api, session)
    assert entry["message_count"] == len(messages)
    assert entry["title"] == "the opening turn"

    last = await api.chat("and now?", session)
    assert last.body["message"]["content"] == f"Echo #{len(messages)}: and now?"


async def test_racing_first_turns_create_one_conversation_with_every_turn(api, standins):
    session = f"first-race-{uuid.uuid4().hex}"
    marker = f"[{uuid.uuid4().hex}]"

    contents, answers = await race(api, session, marker, sleep=0.2)

    messages = await stored_messages(api, session)
    assert len(messages) == 2 * TURNS
    assert_whole_turns(messages, answers)
    assert sorted(m["content"] for m in messages[::2]) == sorted(contents)
    assert messages[1]["content"] == f"Echo #0: {messages[0]['content']}"
    assert_model_saw_stored_prefixes(standins, marker, messages)
    entry = await listed(api, session)
    assert entry["message_count"] == 2 * TURNS
    assert entry["title"] == messages[0]["content"]
