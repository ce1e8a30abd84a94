"""Idempotency-Key end to end: a retried request gets the first answer and appends nothing, whether
it comes later or at the same time, and keys belong to the caller who sent them."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.support.api import Api, signed_in

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

REPLAYED = "Idempotent-Replayed"


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"retry-{uuid.uuid4().hex}"}


def new_session() -> str:
    return f"idem-{uuid.uuid4().hex}"


async def stored(api, session: str) -> list[tuple[str, str]]:
    reply = await api.messages(session, limit=200)
    assert reply.status == 200, reply.body
    assert reply.body["next"] is None
    return [(m["role"], m["content"]) for m in reply.body["messages"]]


def model_calls(standins, content: str) -> int:
    return sum(1 for e in standins.requests() if e["body"]["messages"][-1]["content"] == content)


async def test_a_retry_returns_the_first_answer_and_appends_nothing(api, standins):
    session, headers = new_session(), key()
    await api.chat("an earlier turn", session)
    content = f"remember this {uuid.uuid4().hex}"

    first = await api.chat(content, session, headers=headers)
    retry = await api.chat(content, session, headers=headers)

    assert first.status == 200 and REPLAYED not in first.headers
    assert retry.status == 200 and retry.headers[REPLAYED] == "true"
    assert retry.body == first.body
    assert first.body["message"]["content"] == f"Echo #2: {content}"
    assert model_calls(standins, content) == 1
    assert await stored(api, session) == [
        ("user", "an earlier turn"),
        ("assistant", "Echo #0: an earlier turn"),
        ("user", content),
        ("assistant", f"Echo #2: {content}"),
    ]


async def test_a_retry_of_a_first_turn_without_session_state_lands_in_the_same_conversation(api, standins):
    headers = key()
    content = f"hello {uuid.uuid4().hex}"

    first = await api.chat(content, headers=headers)
    retry = await api.chat(content, headers=headers)
    other = await api.chat(content, headers=key())

    assert first.status == retry.status == other.status == 200
    session = first.body["sessionState"]
    assert retry.body["sessionState"] == session and retry.headers[REPLAYED] == "true"
    assert retry.body["message"] == first.body["message"]
    assert other.body["sessionState"] != session and REPLAYED not in other.headers
    assert model_calls(standins, content) == 2
    assert await stored(api, session) == [("user", content), ("assistant", f"Echo #0: {content}")]


@pytest.mark.parametrize("with_session", [True, False], ids=["session", "no-session"])
async def test_the_same_key_with_another_message_is_refused(api, with_session):
    session, headers = new_session() if with_session else None, key()
    first = await api.chat("the first message", session, headers=headers)
    session = first.body["sessionState"]

    for stream in (False, True):
        reply = await api.chat("a different message", session if with_session else None, headers=headers, stream=stream)
        assert reply.status == 422 and reply.error_code == "idempotency_key_reused"
    assert await stored(api, session) == [("user", "the first message"), ("assistant", "Echo #0: the first message")]


@pytest.mark.parametrize("first_streamed", [False, True], ids=["first-json", "first-stream"])
async def test_the_stream_route_replays_the_stored_answer_as_a_stream(api, standins, first_streamed):
    session, headers = new_session(), key()
    content = f"stream it {uuid.uuid4().hex} in several words please"
    first = await api.chat(content, session, headers=headers, stream=first_streamed)
    assert first.status == 200

    replay = await api.chat(content, session, headers=headers, stream=True)

    assert replay.status == 200 and replay.headers["Content-Type"].startswith("application/jsonl")
    assert replay.headers[REPLAYED] == "true"
    assert replay.lines[0] == {"delta": {"role": "assistant"}, "sessionState": session}
    assert replay.text == f"Echo #0: {content}"
    first_context = first.lines[-1]["context"] if first_streamed else first.body["context"]
    assert replay.lines[-1] == {"delta": {}, "context": first_context}
    assert model_calls(standins, content) == 1
    assert len(await stored(api, session)) == 2


@pytest.mark.parametrize("with_session", [True, False], ids=["session", "no-session"])
async def test_duplicates_arriving_at_the_same_time_store_one_turn(api, standins, with_session):
    session, headers = new_session() if with_session else None, key()
    content = f"at once {uuid.uuid4().hex} [[sleep:0.3]]"

    replies = await asyncio.gather(*(api.chat(content, session, headers=headers, stream=i % 4 == 3) for i in range(8)))

    assert [r.status for r in replies] == [200] * 8
    sessions = {r.lines[0]["sessionState"] if r.lines else r.body["sessionState"] for r in replies}
    assert len(sessions) == 1
    session = sessions.pop()
    answers = {r.text if r.lines else r.body["message"]["content"] for r in replies}
    assert answers == {f"Echo #0: {content}"}
    # Exactly one request's own answer was stored: it is not marked as a replay and did not end in
    # an error. The others are replays, or streams that had already sent their own answer and so
    # end by saying it was not kept.
    lost = [r for r in replies if r.lines and "error" in r.lines[-1]]
    assert all(r.lines[-1]["error"]["code"] == "duplicate_request" for r in lost)
    assert sum(1 for r in replies if REPLAYED not in r.headers and r not in lost) == 1
    assert model_calls(standins, content) >= 1
    assert await stored(api, session) == [("user", content), ("assistant", f"Echo #0: {content}")]
    listing = await api.conversations(limit=200)
    entry = next(c for c in listing.body["conversations"] if c["id"] == session)
    assert entry["message_count"] == 2


async def test_one_key_racing_with_different_messages_keeps_one_and_refuses_the_rest(api):
    session, headers = new_session(), key()
    contents = [f"message {i} {uuid.uuid4().hex} [[sleep:0.3]]" for i in range(4)]

    replies = await asyncio.gather(*(api.chat(c, session, headers=headers) for c in contents))

    kept = [c for c, r in zip(contents, replies, strict=True) if r.status == 200]
    assert len(kept) == 1
    assert all(r.error_code == "idempotency_key_reused" for r in replies if r.status != 200)
    assert await stored(api, session) == [("user", kept[0]), ("assistant", f"Echo #0: {kept[0]}")]


# -- keys are per caller ------------------------------------------------------------------------


@pytest.fixture
async def alice(trusted_server):
    async with Api(trusted_server.url, signed_in(f"alice-{uuid.uuid4().hex}")) as client:
        yield client


@pytest.fixture
async def bob(trusted_server):
    async with Api(trusted_server.url, signed_in(f"bob-{uuid.uuid4().hex}")) as client:
        yield client


async def test_the_same_key_from_another_user_is_a_request_of_its_own(alice, bob, standins):
    headers = key()
    content = f"mine {uuid.uuid4().hex}"

    alices = await alice.chat(content, headers=headers)
    bobs = await bob.chat(content, headers=headers)
    bobs_other = await bob.chat("something else", headers=key())

    assert alices.status == bobs.status == 200
    assert REPLAYED not in bobs.headers
    assert bobs.body["sessionState"] != alices.body["sessionState"]
    assert model_calls(standins, content) == 2
    assert (await alice.messages(bobs.body["sessionState"])).status == 404
    assert (await bob.messages(alices.body["sessionState"])).status == 404
    assert bobs_other.status == 200
    # Each user's retry replays their own answer; neither appended anything.
    for client, first in ((alice, alices), (bob, bobs)):
        retry = await client.chat(content, headers=headers)
        assert retry.headers[REPLAYED] == "true" and retry.body == first.body
        assert len(await stored(client, first.body["sessionState"])) == 2


async def test_the_same_key_and_conversation_id_from_another_user_are_independent(alice, bob):
    session, headers = new_session(), key()

    alices = await alice.chat("alice's message", session, headers=headers)
    bobs = await bob.chat("bob's message", session, headers=headers)

    assert alices.status == 200 and bobs.status == 200, (alices.body, bobs.body)
    assert REPLAYED not in bobs.headers
    assert bobs.body["message"]["content"] == "Echo #0: bob's message"
    assert await stored(alice, session) == [("user", "alice's message"), ("assistant", "Echo #0: alice's message")]
    assert await stored(bob, session) == [("user", "bob's message"), ("assistant", "Echo #0: bob's message")]
