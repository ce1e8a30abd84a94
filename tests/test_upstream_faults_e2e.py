"""What a client sees when the model fails, and that a failed turn stores nothing.

Faults are driven by directives in the user's message, which the model stand-in obeys
(see standins/model.py).
"""

from __future__ import annotations

import uuid

import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def new_session() -> str:
    return f"fault-{uuid.uuid4().hex}"


async def assert_nothing_stored(api, session: str) -> None:
    reply = await api.messages(session)
    assert reply.status == 404, reply.body


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(
    ("directive", "status", "code"),
    [
        ("[[429]]", 429, "rate_limited"),
        ("[[500]]", 502, "model_error"),
        ("[[503]]", 503, "model_error"),
        ("[[filter]]", 400, "content_filter"),
        ("[[sleep:10]]", 504, "model_timeout"),
    ],
)
async def test_upstream_failure_before_the_answer(api, stream, directive, status, code):
    session = new_session()
    reply = await api.chat(f"please {directive}", session, stream=stream)
    assert reply.status == status
    assert reply.error_code == code
    assert reply.headers["Content-Type"].startswith("application/json")
    await assert_nothing_stored(api, session)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_rate_limit_passes_retry_after_on(api, stream):
    reply = await api.chat("busy [[429]]", new_session(), stream=stream)
    assert reply.status == 429 and reply.headers["Retry-After"] == "7"


async def test_a_transient_failure_is_retried_by_the_sdk(api, standins):
    content = f"flaky {uuid.uuid4().hex} [[fail-first:1]]"
    reply = await api.chat(content, new_session())
    assert reply.status == 200 and reply.body["message"]["content"] == f"Echo #0: {content}"
    attempts = [e for e in standins.requests() if e["body"]["messages"][-1]["content"] == content]
    assert [a["status"] for a in attempts] == [500, 200]


async def test_a_stream_cut_mid_answer_ends_with_an_error_line_and_stores_nothing(api):
    session = new_session()
    reply = await api.chat("a long answer please [[cut]]", session, stream=True)
    assert reply.status == 200
    assert reply.lines[0]["sessionState"] == session
    assert reply.lines[-1] == {
        "error": {"code": "model_stream_interrupted", "message": "The model's answer was cut off."}
    }
    await assert_nothing_stored(api, session)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("reason", ["content_filter", "length"])
async def test_a_cut_short_answer_is_returned_and_stored_with_its_finish_reason(api, stream, reason):
    session = new_session()
    reply = await api.chat(f"go on [[finish:{reason}]]", session, stream=stream)
    assert reply.status == 200
    if stream:
        answer, context = reply.text, reply.lines[-1]["context"]
    else:
        answer, context = reply.body["message"]["content"], reply.body["context"]
    assert context["finish_reason"] == reason
    stored = (await api.messages(session)).body["messages"]
    assert stored[-1]["content"] == answer
    assert stored[-1]["context"]["finish_reason"] == reason


async def test_context_length_exceeded_shrinks_the_window_and_retries_once(api, standins):
    session = new_session()
    for i in range(4):
        assert (await api.chat(f"turn {i}", session)).status == 200
    marker = uuid.uuid4().hex
    # 1 system + 8 history + 1 user = 10 messages; the stand-in refuses more than 7.
    reply = await api.chat(f"{marker} [[context-limit:7]]", session)
    assert reply.status == 200
    sent = [len(e["body"]["messages"]) for e in standins.requests() if marker in e["body"]["messages"][-1]["content"]]
    assert sent == [10, 6]
    stored = (await api.messages(session)).body["messages"]
    assert len(stored) == 10 and stored[-2]["content"].startswith(marker)


async def test_context_length_exceeded_twice_is_a_400_and_stores_nothing(api):
    session = new_session()
    assert (await api.chat("first", session)).status == 200
    reply = await api.chat("too much [[context-limit:1]]", session)
    assert reply.status == 400 and reply.error_code == "context_length_exceeded"
    assert len((await api.messages(session)).body["messages"]) == 2
