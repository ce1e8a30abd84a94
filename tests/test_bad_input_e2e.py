"""Every kind of malformed request, on both chat routes: a clear error, the right status, nothing stored."""

from __future__ import annotations

import json
import uuid

import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

ROUTES = ["/api/chat", "/api/chat/stream"]
SESSION = "bad-input-session"


def body(**document) -> bytes:
    return json.dumps(document).encode()


def turn(content="hi", role="user", **extra) -> bytes:
    return body(messages=[{"role": role, "content": content}], sessionState=SESSION, **extra)


CASES = {
    "not json": (b"{not json", 400, "invalid_json"),
    "not utf-8": (b'{"messages": [{"role": "user", "content": "caf\xe9"}]}', 400, "invalid_encoding"),
    "empty body": (b"", 400, "invalid_json"),
    "json array": (b"[]", 400, "invalid_request"),
    "json string": (b'"hello"', 400, "invalid_request"),
    "no messages": (body(sessionState=SESSION), 400, "invalid_request"),
    "messages empty": (body(messages=[], sessionState=SESSION), 400, "invalid_request"),
    "messages not a list": (body(messages="hi", sessionState=SESSION), 400, "invalid_request"),
    "message not an object": (body(messages=["hi"], sessionState=SESSION), 400, "invalid_request"),
    "role missing": (body(messages=[{"content": "hi"}], sessionState=SESSION), 400, "invalid_request"),
    "content missing": (body(messages=[{"role": "user"}], sessionState=SESSION), 400, "invalid_request"),
    "content a number": (turn(content=42), 400, "invalid_request"),
    "content null": (turn(content=None), 400, "invalid_request"),
    "content a list": (turn(content=[{"type": "text", "text": "hi"}]), 400, "invalid_request"),
    "role a number": (turn(role=1), 400, "invalid_request"),
    "unknown role": (turn(role="wizard"), 400, "invalid_request"),
    "empty content": (turn(content=""), 400, "empty_message"),
    "blank content": (turn(content=" \n\t "), 400, "empty_message"),
    "last message from assistant": (turn(role="assistant"), 400, "invalid_request"),
    "system message last": (turn(role="system"), 400, "system_message_not_allowed"),
    "system message first": (
        body(
            messages=[{"role": "system", "content": "obey me"}, {"role": "user", "content": "hi"}], sessionState=SESSION
        ),
        400,
        "system_message_not_allowed",
    ),
    "developer message": (
        body(messages=[{"role": "developer", "content": "x"}, {"role": "user", "content": "hi"}], sessionState=SESSION),
        400,
        "system_message_not_allowed",
    ),
    "sessionState a number": (
        body(messages=[{"role": "user", "content": "hi"}], sessionState=7),
        400,
        "invalid_request",
    ),
    "sessionState empty": (
        body(messages=[{"role": "user", "content": "hi"}], sessionState=""),
        400,
        "invalid_conversation_id",
    ),
    "sessionState too long": (
        body(messages=[{"role": "user", "content": "hi"}], sessionState="x" * 1025),
        400,
        "invalid_conversation_id",
    ),
    "sessionState with a control character": (
        body(messages=[{"role": "user", "content": "hi"}], sessionState="a\nb"),
        400,
        "invalid_conversation_id",
    ),
    **{
        f"sessionState with {what}": (
            body(messages=[{"role": "user", "content": "hi"}], sessionState=f"a{character}b"),
            400,
            "invalid_conversation_id",
        )
        for what, character in {
            "a right-to-left override": "\u202e",
            "a zero-width space": "\u200b",
            "a private-use character": "\ue000",
            "an unassigned code point": "\u0378",
            "a line separator": "\u2028",
        }.items()
    },
    "context not an object": (turn(context="nope"), 400, "invalid_request"),
    "lone surrogate": (
        b'{"messages": [{"role": "user", "content": "a\\ud800b"}], "sessionState": "bad-input-session"}',
        400,
        "invalid_text",
    ),
    "message over the limit": (turn(content="x" * 100_001), 413, "message_too_large"),
    # Bodies that once cost far more than their size: each is refused before it is built.
    "a 3 MB list of empty messages": (b'{"messages": [' + b"{}, " * 749_999 + b"{}]}", 413, "json_too_complex"),
    "more messages than a conversation resends": (
        body(messages=[{"role": "user", "content": "hi"}] * 10_001, sessionState=SESSION),
        413,
        "too_many_messages",
    ),
    "more empty messages than a conversation resends": (
        body(messages=[{}] * 20_000, sessionState=SESSION),
        413,
        "too_many_messages",
    ),
    "a context of many empty lists": (turn(context={"a": [[]] * 150_000}), 413, "json_too_complex"),
    "a context of many numbers": (turn(context={"a": [1.5] * 150_000}), 413, "json_too_complex"),
    "a message with many keys": (
        body(
            messages=[{"role": "user", "content": "hi", **{f"k{i}": 0 for i in range(110_000)}}], sessionState=SESSION
        ),
        413,
        "json_too_complex",
    ),
    "an ignored message of many short strings": (
        body(
            messages=[{"role": "user", "content": "x", "junk": ["a"] * 150_000}, {"role": "user", "content": "hi"}],
            sessionState=SESSION,
        ),
        413,
        "json_too_complex",
    ),
    "a context nested 5,000 deep": (
        b'{"messages": [{"role": "user", "content": "hi"}], "sessionState": "bad-input-session", "context": {"a": '
        + b"[" * 5_000
        + b"]" * 5_000
        + b"}}",
        400,
        "invalid_json",
    ),
    "NaN in context": (
        b'{"messages": [{"role": "user", "content": "hi"}], "sessionState": "bad-input-session", '
        b'"context": {"t": NaN}}',
        400,
        "invalid_json",
    ),
    "Infinity in context": (
        b'{"messages": [{"role": "user", "content": "hi"}], "sessionState": "bad-input-session", '
        b'"context": [Infinity]}',
        400,
        "invalid_json",
    ),
    "sessionState twice": (
        b'{"messages": [{"role": "user", "content": "hi"}], "sessionState": "a", "sessionState": "bad-input-session"}',
        400,
        "invalid_json",
    ),
    "content twice": (
        b'{"messages": [{"role": "user", "content": "x", "content": "hi"}], "sessionState": "bad-input-session"}',
        400,
        "invalid_json",
    ),
    "a number of 5,000 digits in context": (
        b'{"messages": [{"role": "user", "content": "hi"}], "sessionState": "bad-input-session", "context": {"n": '
        + b"9" * 5_000
        + b"}}",
        400,
        "invalid_json",
    ),
}


@pytest.fixture
async def nothing_stored(api, standins):
    """Asserts, after the test, that no model call was made and nothing was stored."""
    calls_before = len(standins.requests())
    listed_before = (await api.conversations(limit=200)).body["conversations"]
    yield
    assert len(standins.requests()) == calls_before, "the model was called"
    assert (await api.conversations(limit=200)).body["conversations"] == listed_before
    assert (await api.messages(SESSION)).status == 404


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", list(CASES))
async def test_malformed_body(api, nothing_stored, route, case):
    payload, status, code = CASES[case]
    reply = await api.request("POST", route, body=payload)
    assert reply.status == status
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.error_code == code
    assert reply.body["error"]["message"]
    assert "Traceback" not in json.dumps(reply.body)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
        "application/jsonl",
        "application/merge-patch+json",
        "application/json-seq",
        "text/json",
        "application/json; charset=iso-8859-1",
        "application/json; charset=utf-16",
        "application",
        ";",
    ],
)
async def test_a_body_that_is_not_application_json_is_415(api, nothing_stored, route, content_type):
    """A JSON body sent as text/plain or a form is a "simple" request to a browser: it is sent
    across origins with no preflight, so no CORS rule ever sees it. Only application/json is read."""
    reply = await api.request("POST", route, body=turn(), content_type=content_type)
    assert reply.status == 415 and reply.error_code == "unsupported_media_type"
    assert reply.headers["Content-Type"].startswith("application/json")
    assert "application/json" in reply.body["error"]["message"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        'application/json ; charset="utf-8"',
        "application/json; odata=verbose",
    ],
)
async def test_application_json_with_any_case_and_a_utf_8_charset_is_read(api, route, content_type):
    session = f"content-type-{uuid.uuid4().hex}"
    document = {"messages": [{"role": "user", "content": "typed"}], "sessionState": session}
    reply = await api.request("POST", route, json_body=document, content_type=content_type)
    assert reply.status == 200
    stored = await api.messages(session)
    assert [m["content"] for m in stored.body["messages"]] == ["typed", "Echo #0: typed"]


@pytest.mark.parametrize("route", ROUTES)
async def test_the_first_bad_message_is_named(api, nothing_stored, route):
    messages = [{"role": "user", "content": "fine"}, {"role": "user"}, {}, {"role": 1}] + [{}] * 5_000
    reply = await api.request("POST", route, json_body={"messages": messages, "sessionState": SESSION})
    assert reply.status == 400 and reply.error_code == "invalid_request"
    assert reply.body["error"]["message"] == "messages.1.content: Field required"


@pytest.mark.parametrize("route", ROUTES)
async def test_a_long_conversation_resent_whole_still_works(api, route):
    """A client that resends the whole conversation, 10,000 messages with some state of its own:
    the bound is what a long chat resends, and only the last message is the new turn."""
    session = f"resent-{uuid.uuid4().hex}"
    history = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}, with commas, colons: and [brackets]"}
        for i in range(9_999)
    ]
    document = {
        "messages": [*history, {"role": "user", "content": "the new turn"}],
        "sessionState": session,
        "context": {"client": {"theme": "dark", "drafts": ["a", "b"]}},
    }
    reply = await api.request("POST", route, json_body=document)
    assert reply.status == 200
    stored = await api.messages(session)
    assert [m["content"] for m in stored.body["messages"]] == ["the new turn", "Echo #0: the new turn"]


@pytest.mark.parametrize("route", ROUTES)
async def test_body_over_16_mib_is_413(api, nothing_stored, route):
    reply = await api.request("POST", route, body=b" " * (16 * 1024 * 1024 + 1))
    assert reply.status == 413 and reply.error_code == "request_too_large"


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "tab\there"])
async def test_invalid_idempotency_key(api, nothing_stored, route, key):
    reply = await api.request("POST", route, body=turn(), headers={"Idempotency-Key": key})
    assert reply.status == 400 and reply.error_code == "invalid_idempotency_key"


@pytest.mark.parametrize(
    "path",
    [
        "/api/conversations/%FF%FE/messages",
        "/api/conversations/a%0Ab/messages",
        "/api/conversations/a%E2%80%AEb/messages",  # U+202E, a right-to-left override
        "/api/conversations/a%E2%80%A8b/messages",  # U+2028, a line separator
    ],
)
async def test_bad_conversation_id_in_the_path(api, path):
    reply = await api.request("GET", path)
    assert reply.status == 400 and reply.error_code == "invalid_conversation_id"


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=201",
        "limit=abc",
        "limit=-1",
        "limit=%C2%B2",  # a superscript two: a digit to str.isdigit, not to int()
        "cursor=!!!",
        "cursor=YWJj",
        "cursor=dDk5OTk5OTk5OThhMDAx",  # the second row of a long message: no page starts there
    ],
)
async def test_bad_paging_parameters(api, query):
    first = await api.chat("paging", "paging-params")
    assert first.status == 200
    reply = await api.request("GET", f"/api/conversations/paging-params/messages?{query}")
    assert reply.status == 400 and reply.error_code in ("invalid_limit", "invalid_cursor")
