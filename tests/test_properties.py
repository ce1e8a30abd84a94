"""Properties that hold for any input: request parsing, Table keys, and a turn's round trip.

Parsing never fails with anything but a ChatError (so no input reaches the 500 path), keys are
valid Table keys for any owner and conversation ID, and any printable ID with any text comes back
from GET messages exactly as it was sent.
"""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from chat.engine.errors import ChatError, InvalidRequest
from chat.engine.history import Conversation
from chat.engine.ids import validate_conversation_id
from chat.storage import keys
from chat.storage.limits import check_entity
from chat.web.chat_protocol import CLIENT_ROLES, parse_chat_request
from chat.web.errors import status_of
from tests.support.api import Api, signed_in

MAX_CHARS = 1_000
QUICK = settings(max_examples=200, deadline=None)

# Any code point, lone surrogates included: JSON can carry them as \ud800 escapes.
any_text = st.text(st.characters() | st.characters(categories=("Cs",)), max_size=40)
# What a conversation ID may hold: anything printable. Not printable: controls (Cc), format
# characters such as U+202E (Cf), lone surrogates (Cs), private use (Co), unassigned code points
# (Cn), and the line and paragraph separators (Zl, Zp). Spaces (Zs) are printable.
NOT_PRINTABLE = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
printable = st.characters(exclude_categories=NOT_PRINTABLE)
conversation_ids = st.text(printable, min_size=1, max_size=60)
# IDs a URL can name: in a URL path, a decoded "%2F" stands for "/" (see chat.http.conversation_id_of).
url_conversation_ids = conversation_ids.filter(lambda i: "%2f" not in i.lower())
# Text a user can send: no lone surrogates (they cannot be stored or sent as UTF-8), not all blank.
message_text = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=300).filter(str.strip)
# What the model stand-in echoes: no "[[", which it reads as a directive (standins/completion.py).
echoed_text = message_text.filter(lambda text: "[[" not in text)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=20,
)
messages_like = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from([*CLIENT_ROLES, "wizard"]) | json_values, "content": any_text | json_values}
    )
    | json_values,
    max_size=4,
)
documents_like = st.fixed_dictionaries(
    {},
    optional={
        "messages": messages_like | json_values,
        "sessionState": any_text | json_values,
        "context": json_values,
    },
)


def parse(body: bytes):
    return parse_chat_request(body, max_message_chars=MAX_CHARS)


def encode(document, ascii_only: bool) -> bytes:
    return json.dumps(document, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


# -- parsing ----------------------------------------------------------------------------------------------


@QUICK
@given(st.binary(max_size=300))
@example(b"1" * 5000)  # past Python's limit on the digits of an int it will parse
@example(b'{"messages": [{"role": "user", "content": "hi"}], "context": {"n": ' + b"9" * 5000 + b"}}")
@example(b"[" * 100_000)
@example(b'{"messages": [{"role": "user", "content": "\\ud800"}]}')
@example(b"\xef\xbb\xbf{}")
def test_any_bytes_parse_or_raise_a_chat_error(body):
    try:
        parse(body)
    except ChatError as e:
        assert 400 <= status_of(e) < 500


@QUICK
@given(documents_like | json_values, st.booleans())
def test_any_json_document_parses_or_raises_a_chat_error(document, ascii_only):
    try:
        turn = parse(encode(document, ascii_only))
    except ChatError as e:
        assert 400 <= status_of(e) < 500
        return
    # Whatever parsed is a well-formed turn.
    assert turn.text.strip() and len(turn.text) <= MAX_CHARS
    assert document["messages"][-1] == {"role": "user", "content": turn.text}


@QUICK
@given(
    history=st.lists(
        st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "tool"]), "content": message_text}),
        max_size=5,
    ),
    content=message_text,
    session=st.none() | conversation_ids,
    ascii_only=st.booleans(),
)
def test_a_valid_request_parses_to_exactly_its_last_user_message(history, content, session, ascii_only):
    document = {"messages": [*history, {"role": "user", "content": content}], "context": {"x": 1}}
    if session is not None:
        document["sessionState"] = session
    turn = parse(encode(document, ascii_only))
    assert turn.text == content
    assert turn.conversation_id == session


# -- conversation IDs and keys ------------------------------------------------------------------------------


@QUICK
@given(conversation_ids)
@example("a/b\\c#d?e")
@example("x" * 1024)
@example("19:abc@thread.tacv2;messageid=1")
@example(" a spaced id ")
@example("\u00a0no-break\u3000ideographic space")
@example("會話 😀 مرحبا")
def test_a_printable_id_is_a_valid_conversation_id(conversation_id):
    assert validate_conversation_id(conversation_id) == conversation_id


@QUICK
@given(st.text(printable, max_size=20), st.characters(categories=NOT_PRINTABLE), st.text(printable, max_size=20))
@example("", "\u202e", "gnp.exe")  # a right-to-left override: the ID would display as "exe.png"
@example("a", "\u200b", "b")  # a zero-width space: looks like "ab"
@example("", "\ufeff", "bom")
@example("a", "\ue000", "")  # private use
@example("a", "\u0378", "")  # unassigned
@example("a", "\U0010ffff", "")  # a noncharacter, unassigned
@example("line", "\u2028", "separator")
@example("paragraph", "\u2029", "separator")
def test_an_id_with_a_character_that_is_not_printable_is_refused(before, character, after):
    with pytest.raises(InvalidRequest) as raised:
        validate_conversation_id(before + character + after)
    assert raised.value.code == "invalid_conversation_id"


@QUICK
@given(owner=any_text, conversation_id=any_text, idempotency_key=any_text, turn=st.integers(1, 2**31 - 1))
@example(owner="user:aad:\ud800", conversation_id="a/b\\c#d?e", idempotency_key="k", turn=1)
def test_any_owner_and_id_give_valid_table_keys(owner, conversation_id, idempotency_key, turn):
    conversation = Conversation(owner, conversation_id).key
    owner_partition = keys.owner_partition(owner)
    for row_key in (
        keys.item_row_key(turn, 0, 0),
        keys.item_row_key(turn, 1, 999),
        keys.idempotency_row_key(idempotency_key),
    ):
        check_entity({"PartitionKey": conversation, "RowKey": row_key, "c00": conversation_id})
    for row_key in (keys.record_row_key(conversation), keys.activity_row_key(2**41, conversation)):
        check_entity({"PartitionKey": owner_partition, "RowKey": row_key, "id": conversation_id})


@QUICK
@given(st.tuples(any_text, any_text), st.tuples(any_text, any_text))
@example(("ab", "c"), ("a", "bc"))  # the same characters, split differently
@example(("app", "x"), ("user:app", "x"))
def test_different_owner_and_id_pairs_are_different_partitions(first, second):
    assume(first != second)
    assert Conversation(*first).key != Conversation(*second).key
    assert keys.owner_partition(first[0]) != Conversation(*second).key


@QUICK
@given(any_text, any_text)
def test_owner_partitions_differ_by_owner(first, second):
    assume(first != second)
    assert keys.owner_partition(first) != keys.owner_partition(second)


def test_row_keys_sort_newest_turn_first_and_a_turns_newest_item_first():
    ordered = [
        keys.item_row_key(10, 1, 0),
        keys.item_row_key(10, 1, 1),
        keys.item_row_key(10, 0, 0),
        keys.item_row_key(9, 1, 0),
        keys.item_row_key(2, 0, 0),
    ]
    assert sorted(ordered) == ordered
    assert all(keys.TURN_PREFIX <= key < keys.TURN_END for key in ordered)


# -- end to end ---------------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.e2e
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=any_text.filter(bool), conversation_id=url_conversation_ids, content=echoed_text, stream=st.booleans())
@example(user="u", conversation_id="19:abc@thread.tacv2;messageid=1", content="héllo 😀\n\t\x00 end", stream=False)
@example(user="u", conversation_id="\u3000 % %2 / %25 ?#&=+ 会話", content="\u200b" + "é" * 70_000, stream=True)
@example(user="u", conversation_id="..", content="dots", stream=False)
@example(user="\ud800", conversation_id=".", content="dot", stream=True)
async def test_any_owner_any_printable_id_and_any_text_round_trip(
    trusted_server, user, conversation_id, content, stream
):
    async with Api(trusted_server.url, headers=signed_in(user)) as api:
        # Hypothesis may try an ID again: start from an empty conversation each time.
        assert (await api.delete(conversation_id)).status == 204
        reply = await api.chat(content, conversation_id, stream=stream)
        assert reply.status == 200, reply.body
        answer = reply.text if stream else reply.body["message"]["content"]
        assert answer == f"Echo #0: {content}"
        stored = await api.messages(conversation_id)
        assert stored.status == 200, stored.body
        assert stored.body["sessionState"] == conversation_id
        assert [(m["role"], m["content"]) for m in stored.body["messages"]] == [
            ("user", content),
            ("assistant", answer),
        ]


@pytest.mark.anyio
@pytest.mark.e2e
async def test_a_user_id_with_a_lone_surrogate_can_start_and_retry_a_conversation(trusted_server):
    """A first turn with no sessionState and an Idempotency-Key derives its ID from the owner."""
    headers = {"Idempotency-Key": f"first-{uuid.uuid4().hex}"}
    async with Api(trusted_server.url, headers=signed_in("user-\udc00")) as api:
        first = await api.chat("hello", headers=headers)
        assert first.status == 200, first.body
        again = await api.chat("hello", headers=headers)
        assert again.status == 200 and again.headers["Idempotent-Replayed"] == "true"
        assert again.body["sessionState"] == first.body["sessionState"]
        listed = await api.conversations()
    assert [c["id"] for c in listed.body["conversations"]] == [first.body["sessionState"]]
