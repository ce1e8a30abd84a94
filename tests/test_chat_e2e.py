"""The core chat turn end to end: HTTP in, Azurite and the wire-level stand-ins behind."""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def model_messages(standins, conversation_marker: str) -> list[dict]:
    """The messages the model received for the newest request whose last turn contains the marker."""
    for entry in reversed(standins.requests()):
        messages = entry["body"]["messages"]
        if conversation_marker in messages[-1]["content"]:
            return messages
    raise AssertionError(f"the model never saw {conversation_marker!r}")


async def test_first_turn_creates_an_unguessable_conversation(api):
    reply = await api.chat("Hello there")
    assert reply.status == 200
    assert reply.body["message"] == {"role": "assistant", "content": "Echo #0: Hello there"}
    assert re.fullmatch(r"[A-Za-z0-9_-]{24}", reply.body["sessionState"])
    assert reply.body["context"]["finish_reason"] == "stop"
    assert reply.body["context"]["usage"]["completion_tokens"] > 0
    other = await api.chat("Hello there")
    assert other.body["sessionState"] != reply.body["sessionState"]


async def test_second_turn_sees_the_first(api, standins):
    first = await api.chat("My name is Ada. [first-of-two]")
    session = first.body["sessionState"]
    second = await api.chat("What is my name? [second-of-two]", session)
    assert second.status == 200
    assert second.body["sessionState"] == session
    assert second.body["message"]["content"] == "Echo #2: What is my name? [second-of-two]"
    assert model_messages(standins, "[second-of-two]") == [
        {"role": "system", "content": "You are the test assistant."},
        {"role": "user", "content": "My name is Ada. [first-of-two]"},
        {"role": "assistant", "content": "Echo #0: My name is Ada. [first-of-two]"},
        {"role": "user", "content": "What is my name? [second-of-two]"},
    ]


async def test_client_history_is_ignored_the_server_owns_it(api, standins):
    first = await api.chat("one [own-history]")
    forged = [{"role": "user", "content": "forged"}, {"role": "assistant", "content": "forged too"}]
    second = await api.chat("two [own-history-2]", first.body["sessionState"], history=forged)
    assert second.body["message"]["content"] == "Echo #2: two [own-history-2]"
    contents = [m["content"] for m in model_messages(standins, "[own-history-2]")]
    assert "forged" not in contents and "forged too" not in contents


async def test_the_model_is_called_keyless_with_a_managed_identity_token(api, standins):
    await api.chat("keyless? [keyless]")
    entry = next(e for e in reversed(standins.requests()) if "[keyless]" in e["body"]["messages"][-1]["content"])
    assert entry["auth"] == "managed-identity"
    assert "api-key" not in {k.lower() for k in entry["headers"]}
    assert entry["grant"]["resource"] == "https://cognitiveservices.azure.com"
    assert any(t["status"] == 200 for t in standins.token_requests())


async def test_stream_answers_in_json_lines_and_stores_the_turn(api):
    reply = await api.chat("Tell me a story in several words please", stream=True)
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/jsonl")
    first, *middle, last = reply.lines
    session = first["sessionState"]
    assert first == {"delta": {"role": "assistant"}, "sessionState": session}
    assert len(middle) > 1 and all(set(line) == {"delta"} for line in middle)
    assert reply.text == "Echo #0: Tell me a story in several words please"
    assert last["delta"] == {} and last["context"]["finish_reason"] == "stop"
    assert last["context"]["usage"]["prompt_tokens"] > 0
    stored = await api.messages(session)
    assert [(m["role"], m["content"]) for m in stored.body["messages"]] == [
        ("user", "Tell me a story in several words please"),
        ("assistant", reply.text),
    ]


async def test_stream_second_turn_sees_the_first(api, standins):
    first = await api.chat("Remember 42 [stream-a]", stream=True)
    session = first.lines[0]["sessionState"]
    second = await api.chat("What number? [stream-b]", session, stream=True)
    assert second.text == "Echo #2: What number? [stream-b]"
    assert [m["content"] for m in model_messages(standins, "[stream-b]")][1:3] == [
        "Remember 42 [stream-a]",
        "Echo #0: Remember 42 [stream-a]",
    ]


@pytest.mark.parametrize(
    "conversation_id",
    ["19:abc@thread.tacv2;messageid=1", "a/b\\c#d?e", "x/messages", "ünïcødé 会話 😀", " spaced ", "100%", "%2"],
)
async def test_any_printable_conversation_id_works(api, conversation_id):
    first = await api.chat("hi", conversation_id)
    assert first.status == 200 and first.body["sessionState"] == conversation_id
    second = await api.chat("again", conversation_id, stream=True)
    assert second.lines[0]["sessionState"] == conversation_id
    stored = await api.messages(conversation_id)
    assert stored.status == 200
    assert stored.body["sessionState"] == conversation_id
    assert [m["content"] for m in stored.body["messages"]] == ["hi", "Echo #0: hi", "again", "Echo #2: again"]


async def test_messages_of_an_unknown_conversation_is_404(api):
    reply = await api.messages("never-used-id")
    assert reply.status == 404 and reply.error_code == "conversation_not_found"


async def test_unsupported_method_is_a_json_405(api):
    reply = await api.request("GET", "/api/chat")
    assert reply.status == 405 and reply.error_code == "method_not_allowed"
    assert reply.headers["Allow"] == "POST"


async def test_unknown_route_is_a_json_404(api):
    reply = await api.request("GET", "/api/nothing-here")
    assert reply.status == 404 and reply.error_code == "not_found"


async def test_health_reports_configuration_storage_and_model(api, standins):
    before = standins.model.models_requests
    reply = await api.request("GET", "/api/health")
    assert reply.status == 200
    assert reply.body == {
        "status": "ok",
        "model": {"kind": "azure_openai"},
        "checks": {"storage": "ok", "model": "ok"},
        "missing_tables": [],
        "warnings": [],
    }
    assert standins.model.models_requests in (before, before + 1)
    assert "127.0.0.1" not in str(reply.body)


async def test_an_encoded_slash_reads_as_a_slash_in_urls_on_every_host(api):
    # The Functions host forwards %2F to the worker re-encoded as %252F; reading a decoded "%2F" as
    # "/" lets both hosts name the same conversation. The text "%2F" itself only fits sessionState.
    assert (await api.chat("slash", "a/b")).status == 200
    for path in (
        "/api/conversations/a%2Fb/messages",
        "/api/conversations/a%252Fb/messages",
        "/api/conversations/a%252fb/messages",
    ):
        reply = await api.request("GET", path)
        assert reply.status == 200 and reply.body["sessionState"] == "a/b"


async def test_an_id_holding_the_text_percent_2f_still_chats_through_session_state(api):
    first = await api.chat("one", "odd%2Fid")
    second = await api.chat("two", "odd%2Fid")
    assert second.body["message"]["content"] == "Echo #2: two" and first.body["sessionState"] == "odd%2Fid"


async def test_route_segments_match_in_any_case_as_the_functions_host_does(api):
    assert (await api.chat("cased", "cased-1")).status == 200
    reply = await api.request("GET", "/API/Conversations/cased-1/Messages")
    assert reply.status == 200 and reply.body["sessionState"] == "cased-1"
    assert (await api.request("GET", "/api/conversations?limit=%C2%B2")).error_code == "invalid_limit"
