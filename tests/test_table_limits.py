"""Azure Table Storage's limits as our code accounts for them, the store refusing a turn over them,
and what an item's rows hold besides its text (a refusal's mark).

Azurite does not enforce every limit, so these accountings are what keeps a turn that Azurite
accepts from failing in Azure. Sizes follow the service's documented formula: two bytes per UTF-16
code unit of a string, four for its length, eight per property plus its name.
"""

from __future__ import annotations

import json
import uuid

import pytest
from azure.data.tables.aio import TableClient
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chat.engine.errors import AnswerTooLarge
from chat.engine.history import Conversation, Head, NewTurn
from chat.engine.items import Usage, message
from chat.storage import codec, keys
from chat.storage.limits import (
    MAX_ENTITY_BYTES,
    MAX_PROPERTIES,
    MAX_PROPERTY_BYTES,
    MAX_TRANSACTION_BYTES,
    MAX_TRANSACTION_ENTITIES,
    PART_CHARS,
    PARTS_PER_ROW,
    LimitExceeded,
    check_entity,
    check_transaction,
    entity_bytes,
    property_bytes,
    split_text,
    transaction_bytes,
    utf16_units,
)
from chat.storage.messages import TurnStore
from chat.storage.tables import Table
from chat.web.errors import status_of
from tests.support.turns import chat_turn

PARTITION = Conversation("app", "limits").key
ROW = keys.item_row_key(1, 0, 0)
# One character of each UTF-8 width: 1, 2, 3 bytes, and an astral one (4 UTF-8 bytes, 2 UTF-16 units).
SAMPLES = {"ascii": "a", "2-byte": "é", "3-byte": "中", "astral": "😀"}
UNITS = {"ascii": 1, "2-byte": 1, "3-byte": 1, "astral": 2}


def entity(**properties) -> dict:
    return {"PartitionKey": PARTITION, "RowKey": ROW, **properties}


# -- accounting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SAMPLES)
def test_a_string_costs_two_bytes_per_utf16_unit_plus_four(kind):
    text = SAMPLES[kind] * 1000
    assert utf16_units(text) == len(text.encode("utf-16-le")) // 2 == 1000 * UNITS[kind]
    assert property_bytes(text) == 4 + 2000 * UNITS[kind]


def test_other_property_types_cost_what_the_service_documents():
    assert property_bytes(True) == 1
    assert property_bytes(7) == property_bytes(2**40) == property_bytes(1.5) == 8
    assert property_bytes(b"\x00" * 10) == 14


def test_an_entity_costs_its_keys_and_each_property_with_its_name():
    keys_cost = 4 + 2 * (len(PARTITION) + len(ROW))
    assert entity_bytes(entity()) == keys_cost
    # "c00": 8 + 2 * 3 for the name, 4 + 2 * 2 for the value; "n": 8 + 2 + 8.
    assert entity_bytes(entity(c00="ab", n=1)) == keys_cost + (8 + 6 + 8) + (8 + 2 + 8)


# -- properties and entities ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", SAMPLES)
def test_a_string_property_may_hold_exactly_64_kib(kind):
    units = MAX_PROPERTY_BYTES // 2
    just_fits = SAMPLES[kind] * (units // UNITS[kind])
    check_entity(entity(c00=just_fits))
    with pytest.raises(LimitExceeded, match="c00"):
        check_entity(entity(c00=just_fits + "x"))


def test_an_astral_string_is_measured_in_utf16_units_not_code_points():
    # 20,000 emoji are 20,000 code points but 40,000 UTF-16 units: 80,000 bytes, over 64 KiB.
    with pytest.raises(LimitExceeded):
        check_entity(entity(c00="😀" * 20_000))
    check_entity(entity(c00="中" * 20_000))


def test_an_entity_is_at_most_1_mib():
    part = "x" * 30_000  # 60,004 bytes a property
    fits = {f"c{i:02d}": part for i in range(17)}
    assert entity_bytes(entity(**fits)) <= MAX_ENTITY_BYTES
    check_entity(entity(**fits))
    over = {f"c{i:02d}": part for i in range(18)}
    assert entity_bytes(entity(**over)) > MAX_ENTITY_BYTES
    with pytest.raises(LimitExceeded, match="entity of"):
        check_entity(entity(**over))


def test_an_entity_has_at_most_252_properties_besides_its_keys():
    check_entity(entity(**{f"p{i}": i for i in range(MAX_PROPERTIES)}))
    with pytest.raises(LimitExceeded, match="properties"):
        check_entity(entity(**{f"p{i}": i for i in range(MAX_PROPERTIES + 1)}))


@pytest.mark.parametrize("char", ["/", "\\", "#", "?", "\x00", "\n", "\x7f", "\x85", "\x9f"])
@pytest.mark.parametrize("key", ["PartitionKey", "RowKey"])
def test_keys_refuse_the_characters_azure_forbids(key, char):
    with pytest.raises(LimitExceeded, match=key):
        check_entity({**entity(), key: f"a{char}b"})


def test_a_key_is_at_most_1_kib():
    check_entity({**entity(), "RowKey": "k" * 512})
    with pytest.raises(LimitExceeded, match="RowKey"):
        check_entity({**entity(), "RowKey": "k" * 513})


# -- transactions ---------------------------------------------------------------------------------


def rows(count: int, **properties) -> list[dict]:
    return [{"PartitionKey": PARTITION, "RowKey": f"r{i:03d}", **properties} for i in range(count)]


def test_a_transaction_holds_at_most_100_entities():
    check_transaction(rows(MAX_TRANSACTION_ENTITIES))
    with pytest.raises(LimitExceeded, match="101 entities"):
        check_transaction(rows(MAX_TRANSACTION_ENTITIES + 1))


def test_a_transaction_is_at_most_4_mib_measured_as_the_sdk_escapes_it():
    # 30,000 emoji: 60,000 UTF-16 units, 120,000 bytes in storage terms, but each unit is written as
    # a 6-byte \uXXXX escape: 360,000 bytes of JSON. Twelve such entities exceed 4 MiB.
    half = "😀" * 15_000
    entities = rows(12, c00=half, c01=half)
    for e in entities:
        check_entity(e)
    assert sum(entity_bytes(e) for e in entities) < MAX_TRANSACTION_BYTES
    assert transaction_bytes(entities) > MAX_TRANSACTION_BYTES
    with pytest.raises(LimitExceeded, match="transaction of"):
        check_transaction(entities)
    check_transaction(entities[:11])


def test_a_transaction_checks_each_of_its_entities():
    with pytest.raises(LimitExceeded, match="c00"):
        check_transaction([*rows(2), {"PartitionKey": PARTITION, "RowKey": "big", "c00": "x" * 40_000}])


def _exactly_over(e: dict) -> bool:
    """The limits of one entity counted exactly, with no bound to skip the count."""
    too_large = any(isinstance(v, str) and property_bytes(v) - 4 > MAX_PROPERTY_BYTES for v in e.values())
    return too_large or entity_bytes(e) > MAX_ENTITY_BYTES


def values():
    """Property values of every kind, strings up to 60,000 characters of any width and escape."""
    text = st.builds(
        lambda sample, times: sample * times,
        st.sampled_from(["a", "é", "中", "😀", "\x01", '"', "\\", "ab😀"]),
        st.integers(min_value=0, max_value=60_000),
    )
    return st.one_of(text, st.text(max_size=40), st.integers(-(2**63), 2**63 - 1), st.floats(), st.booleans())


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(alphabet="abcdefgh", min_size=1, max_size=8), values(), max_size=24))
def test_an_entitys_check_agrees_with_the_exact_count_and_bounds_its_transaction_bytes(properties):
    # check_entity counts sizes exactly only when a bound says a limit could be passed: it must
    # refuse exactly what the exact count refuses, and what it returns must bound the bytes
    # transaction_bytes would count for the entity, so a transaction under the bound is under 4 MiB.
    e = entity(**properties)
    if _exactly_over(e):
        with pytest.raises(LimitExceeded):
            check_entity(e)
        return
    bound = check_entity(e)
    assert bound >= transaction_bytes([e]) - transaction_bytes([])


def test_a_transaction_past_its_bound_is_measured_exactly():
    # Eleven entities of 96,000 quote characters pass the bound's twelve bytes a character (4 MiB)
    # but are 192,000 bytes of JSON each (every quote escaped): they are measured, and fit. Twenty-two
    # are over 4 MiB, measured so.
    quotes = '"' * 32_000
    entities = rows(22, c00=quotes, c01=quotes, c02=quotes)
    assert transaction_bytes(entities[:11]) < MAX_TRANSACTION_BYTES < transaction_bytes(entities)
    check_transaction(entities[:11])
    with pytest.raises(LimitExceeded, match="transaction of"):
        check_transaction(entities)


# -- splitting text ---------------------------------------------------------------------------------


def repeated_text():
    """Texts up to ~200,000 code points, built as a repeated sample so they stay cheap to generate."""
    return st.builds(
        lambda sample, times: sample * times,
        st.text(min_size=1, max_size=12),
        st.integers(min_value=0, max_value=16_000),
    )


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.text(), repeated_text()))
@example("")
@example("😀" * (PART_CHARS + 1))
@example("a" * PART_CHARS)
@example("a" * (PART_CHARS - 1) + "😀" + "b")
def test_split_text_parts_rejoin_exactly_and_each_fits_a_property(text):
    parts = split_text(text)
    assert "".join(parts) == text
    assert parts  # even empty text has one part, so a message always has a head row
    assert all(0 < len(p) <= PART_CHARS for p in parts) or parts == [""]
    assert all(len(p) == PART_CHARS for p in parts[:-1])
    for part in parts:
        # A part is whole code points: it encodes on its own, and fits a 64 KiB property.
        assert part.encode("utf-16-le").decode("utf-16-le") == part
        assert property_bytes(part) - 4 <= MAX_PROPERTY_BYTES


def test_split_text_never_cuts_an_astral_character_in_half():
    text = "a" + "😀" * PART_CHARS
    first, second = split_text(text)
    assert first[-1] == "😀" and second == "😀"
    assert not any(0xD800 <= ord(ch) <= 0xDFFF for part in (first, second) for ch in part)


def test_a_full_row_of_parts_stays_under_1_mib_in_the_worst_case():
    worst = "😀" * PART_CHARS
    head = {"n": keys.MAX_TURN, "k": "fc", "id": "fc_" + "0" * 24, "rows": 99, "at": "2025-01-01T00:00:00.000000Z"}
    # A function call's head, every property at its longest: the call ID and name (the front doors
    # accept at most 255 and 64 characters), the conversation ID, how the answer ended, its usage.
    row = entity(
        **head, call="c" * 255, name="n" * 64, out=True, conv="c" * 1024, fin="content_filter", ptok=2**40, ctok=2**40
    )
    row.update({f"c{i:02d}": worst for i in range(PARTS_PER_ROW)})
    check_entity(row)


@settings(max_examples=50, deadline=None)
@given(
    st.dictionaries(st.text(min_size=1, max_size=64), st.text(max_size=512), max_size=16),
    st.integers(0, keys.MAX_TURN),
)
@example({f"{i:02d}" + "😀" * 62: "😀" * 512 for i in range(16)}, keys.MAX_TURN)  # the most UTF-16 units
def test_the_largest_head_row_bounds_every_head_row_a_turn_can_write(metadata, number):
    # What a turn's size check counts for the head: no smaller than any head with OpenAI's metadata.
    updated = "2025-01-01T00:00:00.000000Z"
    head = codec.head_entity("p" * 64, number, number, 9_999_999_999, metadata, number, updated)
    largest = codec.largest_head_entity("p" * 64, updated)
    assert entity_bytes(head) <= entity_bytes(largest)
    assert transaction_bytes([head]) <= transaction_bytes([largest])
    assert json.loads(largest["meta"]) and len(json.loads(largest["meta"])) == 16


# -- the store refuses a turn too large for one transaction ------------------------------------------


@pytest.fixture
async def store(azurite):
    prefix = "limits" + uuid.uuid4().hex[:8]
    table = TableClient.from_connection_string(azurite.connection_string, table_name=f"{prefix}messages")
    instance = TurnStore(Table(table))
    await instance.table.ready()  # creates the table
    yield instance, table
    await table.delete_table()
    await instance.close()


async def stored_rows(table: TableClient, conversation: Conversation) -> list[dict]:
    return [e async for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": conversation.key})]


def turn(user: str, answer: str) -> NewTurn:
    return chat_turn(user, answer, "stop", Usage(1, 1), idempotency_key="retry-1")


@pytest.mark.anyio
async def test_a_turn_over_4_mib_raises_answer_too_large_and_stores_nothing(store):
    history, table = store
    conversation = Conversation("app", "too-large")
    # 100,000 emoji of question (1.2 MB as the SDK writes them) and 250,000 of answer (3 MB): each
    # entity is within 1 MiB, the transaction is over 4 MiB.
    with pytest.raises(AnswerTooLarge) as raised:
        await history.append_turn(conversation, Head(), turn("😀" * 100_000, "😀" * 250_000))
    assert (status_of(raised.value), raised.value.code) == (502, "answer_too_large")
    assert await stored_rows(table, conversation) == []


@pytest.mark.anyio
async def test_the_largest_turn_that_fits_is_stored_and_read_back_exactly(store):
    history, table = store
    conversation = Conversation("app", "just-fits")
    user, answer = "😀" * 100_000, "é😀" * 80_000
    await history.append_turn(conversation, Head(), turn(user, answer))
    page = await history.items_page(conversation, limit=10, cursor=None)
    assert [(m.item.role, m.item.text) for m in page.items] == [("user", user), ("assistant", answer)]
    entities = [dict(e) for e in await stored_rows(table, conversation)]
    check_transaction(entities)


@pytest.mark.anyio
async def test_a_refusal_is_stored_with_its_mark_and_read_back_as_one(store):
    history, table = store
    conversation = Conversation("app", "refused")
    refused = message("assistant", "I can't help with that.", refusal=True)
    said = message("assistant", "But I can say this.")
    asked = NewTurn((message("user", "Help me"),), (said, refused), "stop", Usage(3, 9))
    number = await history.append_turn(conversation, Head(), asked)
    # Of the rows, only the refusal's first says it is one.
    marks = {e["id"]: e.get("refusal") for e in await stored_rows(table, conversation) if "id" in e}
    assert marks == {asked.inputs[0].id: None, said.id: None, refused.id: True}

    page = await history.items_page(conversation, limit=10, cursor=None)
    assert [(m.item.text, m.item.refusal) for m in page.items] == [
        ("Help me", False),
        ("But I can say this.", False),
        ("I can't help with that.", True),
    ]
    stored = await history.find_turn(conversation, number)
    assert stored is not None and stored.outputs == (said, refused)
    found = await history.get_item(conversation, refused.id)
    assert found is not None and found.item == refused


@pytest.mark.anyio
async def test_our_transaction_estimate_bounds_the_body_the_sdk_sends(azurite):
    sent: list[int] = []

    def measure(request) -> None:
        if request.http_request.url.endswith("$batch"):
            sent.append(len(request.http_request.body))

    table = TableClient.from_connection_string(
        azurite.connection_string, table_name="limits" + uuid.uuid4().hex[:8], raw_request_hook=measure
    )
    async with table:
        await table.create_table()
        for kind, sample in SAMPLES.items():
            entities = rows(3, c00=sample * 10_000, c01=sample * 5_000, n=2**31 - 1, role="user")
            for e in entities:
                e["RowKey"] = f"{kind}{e['RowKey']}"
            await table.submit_transaction([("create", e) for e in entities])
            assert sent, "the transaction was not observed"
            body = sent.pop()
            assert body <= transaction_bytes(entities), kind
            assert len(json.dumps(entities[0])) < body
        await table.delete_table()
