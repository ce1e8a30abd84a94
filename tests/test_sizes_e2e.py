"""Messages of any size the API accepts are stored and read back exactly, within Azure's limits.

The app runs in its own process, so after each turn the rows it wrote are read straight from
Azurite and checked against Azure's limits (chat.storage.limits), which Azurite does not enforce
in full: every entity, every turn's transaction, and the rows of each message together.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from dataclasses import dataclass

import pytest
from azure.data.tables.aio import TableClient
from azure.storage.blob.aio import ContainerClient

from chat.engine.history import Conversation
from chat.storage import keys, spill
from chat.storage.limits import PART_CHARS, PARTS_PER_ROW, check_entity, check_transaction, split_text
from chat.web.callers import APP_OWNER
from standins.completion import long_text
from tests.support.api import Api
from tests.support.servers import AppServer, app_env

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

PREFIX = "sizes" + uuid.uuid4().hex[:10]
MAX_CHARS = 100_000  # CHAT_MAX_MESSAGE_CHARS's default
ALPHABETS = {
    "ascii": "a",
    "2-byte": "é",
    "3-byte": "中",
    "astral": "😀",  # two UTF-16 units: 64 KiB of storage holds only 16,384 of them
    # combining marks, a ZWJ family, a flag, CJK and plain text: grapheme clusters wider than a code
    # point, and a word every 60 code points, so the streamed echo comes in ~800 chunks
    "mixed": "e\u0301👨\u200d👩\u200d👧🇫🇷中文naïve" * 3 + " ",
}
PART_NAME = re.compile(r"c\d{2}")
MESSAGE_HEAD_PROPERTIES = {"n", "k", "id", "role", "rows", "at"}
# The answer: an output (`out`, how it finished, its usage), and the turn's newest item (`conv`).
ASSISTANT_HEAD_PROPERTIES = MESSAGE_HEAD_PROPERTIES | {"out", "conv", "fin", "ptok", "ctok"}
ROLE_OF_ITEM = {0: "user", 1: "assistant"}  # an AI Chat Protocol turn: the question, then the answer


@pytest.fixture(scope="module")
def sizes_server(standins, azurite):
    instance = AppServer(app_env(standins, azurite.connection_string, CHAT_TABLE_PREFIX=PREFIX)).start()
    yield instance
    instance.stop()


@pytest.fixture
async def api(sizes_server):
    async with Api(sizes_server.url) as client:
        yield client


@dataclass
class Tables:
    messages: TableClient
    conversations: TableClient


@pytest.fixture
async def tables(azurite):
    messages, conversations = (
        TableClient.from_connection_string(azurite.connection_string, table_name=f"{PREFIX}{name}")
        for name in ("messages", "conversations")
    )
    async with messages, conversations:
        yield Tables(messages, conversations)


def new_session(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex}"


def message_of(length: int, alphabet: str, marker: str = "") -> str:
    """Exactly `length` code points: the marker, then the alphabet repeated."""
    filler = alphabet * (length // len(alphabet) + 1)
    return (marker + filler)[:length]


async def all_messages(api: Api, session: str, limit: int = 200) -> list[tuple[str, str]]:
    """Every stored message, oldest first, through as many pages as it takes."""
    pages: list[list[tuple[str, str]]] = []
    cursor = None
    while True:
        reply = await api.messages(session, limit=limit, **({"cursor": cursor} if cursor else {}))
        assert reply.status == 200, reply.body
        pages.insert(0, [(m["role"], m["content"]) for m in reply.body["messages"]])
        cursor = reply.body["next"]
        if cursor is None:
            return [message for page in pages for message in page]


async def rows_of(tables: Tables, session: str) -> list[dict]:
    partition = Conversation(APP_OWNER, session).key
    return [dict(e) async for e in tables.messages.query_entities("PartitionKey eq @pk", parameters={"pk": partition})]


def check_partition(
    rows: list[dict], session: str, blobs: dict[str, list[dict]] | None = None
) -> list[tuple[str, str]]:
    """Check one conversation's rows against Azure's limits and each other; return its messages.

    Every entity must fit Azure's limits, every turn's rows (with its idempotency record and the
    conversation's head) must fit one transaction, the head must name the newest turn, and the
    rows of each message must be whole: numbered from 0, as many as its first row says, its text
    split exactly as split_text splits it. A turn too big for one transaction has a spill row whose
    blob (in `blobs`, by name) holds its message rows; its transaction held the spill row, its
    idempotency record and the head.
    """
    assert rows, f"nothing stored for {session!r}"
    for row in rows:
        check_entity(row)
    spills = {row["n"]: row for row in rows if spill.BLOB_PROPERTY in row}
    for row in spills.values():
        assert set(row) == {"PartitionKey", "RowKey", "n", spill.BLOB_PROPERTY}
        assert row["RowKey"] == spill.spill_row_key(row["n"])
        blob_rows = (blobs or {})[row[spill.BLOB_PROPERTY]]
        assert {keys.parse_item_row_key(r["RowKey"])[0] for r in blob_rows} == {row["n"]}
        rows = [*rows, *blob_rows]
    rows = [row for row in rows if spill.BLOB_PROPERTY not in row]
    by_message: dict[str, list[dict]] = defaultdict(list)
    idempotency: list[dict] = []
    indexes: list[dict] = []
    heads: list[dict] = []
    for row in sorted(rows, key=lambda r: r["RowKey"]):
        if row["RowKey"] == keys.HEAD_ROW_KEY:
            # Its creation time, in Unix seconds, and its count of items; no metadata on the chat routes.
            assert set(row) == {"PartitionKey", "RowKey", "n", "floor", "at", "items", "upd"}
            heads.append(row)
        elif row["RowKey"].startswith(keys.IDEMPOTENCY_PREFIX):
            assert set(row) == {"PartitionKey", "RowKey", "n", "req"}
            idempotency.append(row)
        elif row["RowKey"].startswith(keys.ITEM_INDEX_PREFIX):
            # Whose it is too, so an item_reference finds it by the item's ID alone.
            assert set(row) == {"PartitionKey", "RowKey", "n", "i", "conv"} and row["conv"] == session
            indexes.append(row)
        else:
            assert row["RowKey"].startswith(keys.TURN_PREFIX) and len(row["RowKey"]) == 17, row["RowKey"]
            by_message[row["RowKey"][:14]].append(row)

    messages: dict[tuple[int, str], str] = {}
    turns: dict[int, list[dict]] = defaultdict(list)
    for message_rows in by_message.values():
        number, item, _ = keys.parse_item_row_key(message_rows[0]["RowKey"])
        role = ROLE_OF_ITEM[item]
        head = message_rows[0]
        assert [keys.parse_item_row_key(r["RowKey"]) for r in message_rows] == [
            (number, item, index) for index in range(len(message_rows))
        ]
        assert head["n"] == number and head["role"] == role and head["rows"] == len(message_rows)
        assert head["k"] == "m" and head["id"].startswith("msg_")
        expected_head = ASSISTANT_HEAD_PROPERTIES if role == "assistant" else MESSAGE_HEAD_PROPERTIES
        assert {name for name in head if not PART_NAME.fullmatch(name)} - {"PartitionKey", "RowKey"} == expected_head
        if role == "assistant":
            assert head["conv"] == session
        parts = []
        for row in message_rows:
            names = sorted(name for name in row if PART_NAME.fullmatch(name))
            assert names == [f"c{i:02d}" for i in range(len(names))] and 0 < len(names) <= PARTS_PER_ROW
            if row is not head:
                assert set(row) == {"PartitionKey", "RowKey", *names}
            parts += [row[name] for name in names]
        content = "".join(parts)
        assert parts == split_text(content)
        assert all(len(part) <= PART_CHARS for part in parts)
        messages[(number, role)] = content
        turns[number] += message_rows

    for record in idempotency:
        assert record["n"] in turns, "an idempotency record points at no turn"
        turns[record["n"]].append(record)
    item_ids = {
        (row["n"], keys.parse_item_row_key(row["RowKey"])[1]): row["id"]
        for message_rows in by_message.values()
        for row in message_rows[:1]
    }
    # Each item has one index row, naming where it is.
    assert {(row["n"], row["i"]): row["RowKey"] for row in indexes} == {
        where: keys.item_index_row_key(item_id) for where, item_id in item_ids.items()
    }
    for record in indexes:
        turns[record["n"]].append(record)
    [head] = heads
    for number, entities in turns.items():
        assert {(number, "user"), (number, "assistant")} <= messages.keys(), f"turn {number} is not whole"
        if number in spills:
            # Its rows went to the blob, its index beside it: the transaction held the rest.
            small = [e for e in entities if e["RowKey"].startswith(keys.IDEMPOTENCY_PREFIX)]
            check_transaction([spills[number], *small, head])
        else:
            check_transaction([*entities, head])  # each turn's transaction also updated the head
    assert sorted(turns) == list(range(1, len(turns) + 1)), "turns are numbered 1, 2, 3... with no gap"
    assert (head["n"], head["floor"]) == (len(turns), 0), "the head names the newest turn"
    return [(role, messages[(number, role)]) for number in sorted(turns) for role in ("user", "assistant")]


async def check_stored(api: Api, tables: Tables, session: str, expected: list[tuple[str, str]]) -> None:
    """What GET messages returns and what the rows hold are both exactly `expected`."""
    assert await all_messages(api, session) == expected
    assert check_partition(await rows_of(tables, session), session) == expected


async def answer_of(api: Api, content: str, session: str, *, stream: bool, **kwargs) -> str:
    reply = await api.chat(content, session, stream=stream, **kwargs)
    assert reply.status == 200, reply.body
    if stream:
        assert "error" not in reply.lines[-1], reply.lines[-1]
        assert reply.lines[-1]["context"]["finish_reason"] == "stop"
        return reply.text
    return reply.body["message"]["content"]


# -- user messages up to the limit --------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("alphabet", ALPHABETS)
async def test_a_message_of_the_maximum_size_round_trips_exactly(api, tables, alphabet, stream):
    session = new_session(alphabet)
    content = message_of(MAX_CHARS, ALPHABETS[alphabet], marker=f"{session} ")
    assert len(content) == MAX_CHARS
    answer = await answer_of(api, content, session, stream=stream)
    assert answer == f"Echo #0: {content}"
    await check_stored(api, tables, session, [("user", content), ("assistant", answer)])


async def test_one_character_over_the_limit_is_413_and_stores_nothing(api):
    session = new_session("over")
    reply = await api.chat("😀" * (MAX_CHARS + 1), session)
    assert reply.status == 413 and reply.error_code == "message_too_large"
    assert (await api.messages(session)).status == 404


# -- answers of any length -------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_an_answer_of_300000_characters_round_trips_exactly(api, tables, stream):
    session = new_session("long")
    answer = await answer_of(api, "write at length [[long:300000]]", session, stream=stream)
    assert answer == long_text(300_000)
    await check_stored(api, tables, session, [("user", "write at length [[long:300000]]"), ("assistant", answer)])


@pytest.mark.parametrize(
    "length",
    [
        0,
        1,
        PART_CHARS,
        PART_CHARS + 1,
        PART_CHARS * PARTS_PER_ROW,  # exactly one full row
        PART_CHARS * PARTS_PER_ROW + 1,  # one character spills into a second row
    ],
)
async def test_answers_at_part_and_row_boundaries_round_trip_exactly(api, tables, length):
    session = new_session(f"boundary{length}")
    content = f"exactly [[long:{length}]]"
    answer = await answer_of(api, content, session, stream=True)
    assert answer == long_text(length)
    await check_stored(api, tables, session, [("user", content), ("assistant", answer)])


async def test_the_largest_turns_grow_a_conversation_and_page_back_one_message_at_a_time(api, tables):
    session = new_session("largest")
    expected = []
    # The most a user may send, in the costliest characters, with a 300,000-character answer.
    first = message_of(MAX_CHARS, "😀", marker="[[long:300000]] ")
    expected += [("user", first), ("assistant", await answer_of(api, first, session, stream=False))]
    second = message_of(MAX_CHARS, "中é", marker="[[long:250000]] ")
    headers = {"Idempotency-Key": f"largest-{uuid.uuid4().hex}"}
    expected += [("user", second), ("assistant", await answer_of(api, second, session, stream=True, headers=headers))]
    third = "and a short one"
    expected += [("user", third), ("assistant", await answer_of(api, third, session, stream=False))]
    assert expected[1][1] == long_text(300_000) and expected[3][1] == long_text(250_000)
    assert expected[5][1] == "Echo #0: and a short one"  # the large turns are beyond the history budget

    replayed = await api.chat(second, session, headers=headers)
    assert replayed.status == 200 and replayed.headers.get("Idempotent-Replayed") == "true"
    assert replayed.body["message"]["content"] == long_text(250_000)

    assert await all_messages(api, session, limit=1) == expected
    rows = await rows_of(tables, session)
    assert sum(r["RowKey"].startswith(keys.IDEMPOTENCY_PREFIX) for r in rows) == 1
    assert check_partition(rows, session) == expected


# -- a turn too large for one transaction ------------------------------------------------------------------

# 100,000 emoji are 1.2 MB as the SDK writes them (\uXXXX per UTF-16 unit); an answer of 1,300,000
# characters of the stand-in's mixed text is 3.2 MB more: over the 4 MiB of one transaction.
TOO_LARGE = message_of(MAX_CHARS, "😀", marker="[[long:1300000]] ")


async def assert_nothing_stored(api: Api, session: str) -> None:
    """No message, and no entry in the conversation list either."""
    assert (await api.messages(session)).status == 404
    listed = await api.conversations(limit=200)
    assert listed.status == 200 and session not in [c["id"] for c in listed.body["conversations"]]


@pytest.fixture(scope="module")
def tables_only_server(standins, azurite):
    """Storage that names no blob service: a turn too big for one transaction cannot be stored."""
    tables_only = azurite.connection_string.split("BlobEndpoint=")[0]
    env = app_env(standins, tables_only, CHAT_TABLE_PREFIX=PREFIX + "t")
    instance = AppServer(env).start()
    yield instance
    instance.stop()


@pytest.mark.parametrize("stream", [False, True])
async def test_an_answer_too_large_for_one_transaction_is_stored_whole_through_a_blob(api, stream):
    session = new_session("toolarge")
    reply = await api.chat(TOO_LARGE, session, stream=stream)
    assert reply.status == 200
    if stream:
        assert reply.text == long_text(1_300_000) and "error" not in reply.lines[-1]
    history = await api.messages(session)
    assert history.status == 200
    assert [m["content"] for m in history.body["messages"]] == [TOO_LARGE, long_text(1_300_000)]


async def test_an_answer_too_large_to_store_without_blob_storage_is_a_502_and_stores_nothing(tables_only_server):
    async with Api(tables_only_server.url) as api:
        session = new_session("toolarge")
        reply = await api.chat(TOO_LARGE, session)
        assert reply.status == 502 and reply.error_code == "answer_too_large"
        await assert_nothing_stored(api, session)
        session = new_session("toolargestream")
        reply = await api.chat(TOO_LARGE, session, stream=True)
        assert reply.status == 200
        assert reply.text == long_text(1_300_000)
        assert reply.lines[-1]["error"]["code"] == "answer_too_large"
        await assert_nothing_stored(api, session)


# -- every row the app wrote ------------------------------------------------------------------------------


async def test_every_row_the_app_wrote_is_within_azure_limits(api, tables, azurite):
    """The whole of both tables: every message partition is whole, every list entry fits."""
    session = new_session("scan")
    await answer_of(api, message_of(MAX_CHARS, "é😀", marker="[[long:20000]] "), session, stream=False)

    partitions: dict[str, list[dict]] = defaultdict(list)
    async for row in tables.messages.query_entities("PartitionKey ne ''"):
        partitions[row["PartitionKey"]].append(dict(row))
    sessions = {}
    async for row in tables.conversations.query_entities("PartitionKey ne ''"):
        check_entity(dict(row))
        assert row["PartitionKey"] == keys.owner_partition(APP_OWNER)
        if row["RowKey"].startswith(keys.RECORD_PREFIX):
            sessions[Conversation(APP_OWNER, row["id"]).key] = row["id"]
            assert len(row["title"]) <= 80
    assert session in sessions.values()
    assert len(partitions) >= 1
    assert set(sessions) <= set(partitions), "a conversation is listed that has no messages"
    blobs: dict[str, list[dict]] = {}
    async with ContainerClient.from_connection_string(azurite.connection_string, PREFIX.lower() + "turns") as container:
        if await container.exists():
            async for blob in container.list_blobs():
                data = await (await container.download_blob(blob.name)).readall()
                blobs[blob.name] = spill.decode(blob.name.split("/")[0], data)
    for partition, rows in partitions.items():
        # Every conversation is listed, and its rows are whole and within the limits.
        assert partition in sessions
        check_partition(rows, sessions[partition], blobs)
