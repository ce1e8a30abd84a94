"""The row codec of the messages table: a turn's items as table entities, and entities read back
as items and turns.

An item is one or more rows (its text in parts, `c00`...), its first row saying what it is; a
turn's rows sort newest item first, and its outputs' first rows carry the finish reason and usage.
The head row holds the newest turn number, the floor, the creation time, the metadata and the item
count. A turn too big for one transaction keeps these same rows in a blob (spill.py), read back in
place of its spill row. The layout is in keys.py and docs/storage.md.

A message or function call output with images or files (content parts) keeps its parts, not its
text, in its text properties: a JSON array of `["t", text]`, `["i", url, detail]` and
`["f", data URL, filename]`, its head row marked `cp`. Parts more than one row holds put their turn
in a blob (spans_rows).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from azure.data.tables import TableEntity

from chat.engine.errors import AnswerTooLarge, StorageUnavailable
from chat.engine.history import Conversation, Head, NewTurn, ResponseRecord, StoredItem
from chat.engine.items import (
    Compaction,
    ContentPart,
    FilePart,
    FunctionCall,
    FunctionCallOutput,
    ImagePart,
    Item,
    Message,
    Turn,
    TurnRef,
    Usage,
)
from chat.storage import keys, spill
from chat.storage.blobs import TurnBlobs
from chat.storage.limits import PARTS_PER_ROW, split_text

KIND_CODES = {"message": "m", "function_call": "fc", "function_call_output": "fco", "compaction": "cmp"}
KINDS = {code: kind for kind, code in KIND_CODES.items()}
PARTS_PROPERTY = "cp"  # a message's text properties hold its content parts
# The largest metadata OpenAI allows (16 keys of 64 characters, values of 512), for size checks:
# every character astral (two UTF-16 units, as Azure counts; two \uXXXX escapes in the SDK's JSON),
# written as head_entity writes metadata, once.
_MAX_METADATA_JSON = json.dumps(
    {f"{i:02d}" + "\U0001f600" * 62: "\U0001f600" * 512 for i in range(16)}, ensure_ascii=False
)


# -- a turn as rows ---------------------------------------------------------------------------


def turn_entities(conversation: Conversation, number: int, turn: NewTurn) -> list[dict[str, Any]]:
    """The rows of turn `number`: its items' rows, newest item first, each item's index row, the
    response row and the Idempotency-Key's row, as the turn's transaction creates them."""
    partition = conversation.key
    entities: list[dict[str, Any]] = []
    items = turn.items
    link = _link(conversation, turn)
    # The newest item's rows first, as they sort.
    for index in reversed(range(len(items))):
        rows = _item_entities(partition, number, index, items[index], turn.created_at)
        rows[0].update(link)
        if index >= len(turn.inputs):
            rows[0].update(out=True, fin=turn.finish_reason or "")
            if turn.usage is not None:
                rows[0].update(ptok=turn.usage.prompt_tokens, ctok=turn.usage.completion_tokens)
                if turn.usage.cached_tokens:
                    rows[0].update(cached=turn.usage.cached_tokens)
                if turn.usage.reasoning_tokens:
                    rows[0].update(rtok=turn.usage.reasoning_tokens)
        if index == len(items) - 1:
            rows[0].update(conv=conversation.id)
        entities.extend(rows)
        if not conversation.is_chain or turn.response is not None:
            # Where the item is, by its ID, and whose it is (`conv`), so that an item_reference
            # finds it by the ID alone, which names this partition (ids.new_item_id): a response's
            # items, a chat turn's and those added to a conversation by hand alike. Items of a
            # chain are reached only so.
            entities.append(
                {
                    "PartitionKey": partition,
                    "RowKey": keys.item_index_row_key(items[index].id),
                    "n": number,
                    "i": index,
                    "conv": conversation.id,
                }
            )
    if turn.response is not None:
        entities.append(_response_entity(conversation, number, turn.response))
        if turn.ends_run:
            # Its in-progress row closed in the same transaction (written as an upsert: the row may
            # or may not be there), so a stored turn needs no write after it.
            entities.append({"PartitionKey": partition, "RowKey": keys.run_row_key(turn.response.id), "done": True})
    if turn.idempotency_key is not None:
        entities.append(
            {
                "PartitionKey": partition,
                "RowKey": keys.idempotency_row_key(turn.idempotency_key),
                "n": number,
                "req": turn.request_hash or "",
            }
        )
    return entities


def _item_entities(partition: str, number: int, index: int, item: Item, created_at: str) -> list[dict[str, Any]]:
    """The rows of one item: its head row (what it is, and the first parts of its text), then more
    rows of text parts for a text longer than one row holds."""
    head: dict[str, Any] = {"n": number, "k": KIND_CODES[item.kind], "id": item.id, "at": created_at}
    if isinstance(item, Message):
        head["role"] = item.role
        if item.refusal:
            head["refusal"] = True
        text = item.text
        if item.parts:
            head[PARTS_PROPERTY] = True
            text = encode_parts(item.parts)
    elif isinstance(item, FunctionCall):
        head.update(call=item.call_id, name=item.name)
        text = item.arguments
    elif isinstance(item, Compaction):
        text = item.summary
    else:
        head["call"] = item.call_id
        text = item.output
        if item.parts:
            head[PARTS_PROPERTY] = True
            text = encode_parts(item.parts)
    parts = split_text(text)
    row_parts = [parts[i : i + PARTS_PER_ROW] for i in range(0, len(parts), PARTS_PER_ROW)]
    head["rows"] = len(row_parts)
    entities = []
    for row, these in enumerate(row_parts):
        entity: dict[str, Any] = {"PartitionKey": partition, "RowKey": keys.item_row_key(number, index, row)}
        if row == 0:
            entity.update(head)
        entity.update({f"c{i:02d}": part for i, part in enumerate(these)})
        entities.append(entity)
    return entities


def head_entity(
    partition: str,
    latest_turn: int,
    floor: int,
    created_at: int | None = None,
    metadata: Mapping[str, str] | None = None,
    items: int = 0,
    updated: str | None = None,
) -> dict[str, Any]:
    """The head row. A delete writes it with neither a creation time nor metadata: the
    conversation no longer exists, until its next write. `updated` is its newest turn's time: the
    list shows it (a turn need not update the list; see conversations.py)."""
    entity: dict[str, Any] = {
        "PartitionKey": partition,
        "RowKey": keys.HEAD_ROW_KEY,
        "n": latest_turn,
        "floor": floor,
        "items": items,
    }
    if created_at is not None:
        entity["at"] = created_at
    if metadata:
        entity["meta"] = json.dumps(dict(metadata), ensure_ascii=False)
    if updated is not None:
        entity["upd"] = updated
    return entity


_WIDEST_SECONDS = 9_999_999_999  # a creation time in epoch seconds has at most ten digits (to 2286)


def largest_head_entity(partition: str, updated: str) -> dict[str, Any]:
    """The head row at its largest (the largest turn numbers and count, the largest metadata), for
    the size checks of a turn's transaction."""
    entity = head_entity(partition, keys.MAX_TURN, keys.MAX_TURN, _WIDEST_SECONDS, None, keys.MAX_TURN, updated)
    entity["meta"] = _MAX_METADATA_JSON
    return entity


def _link(conversation: Conversation, turn: NewTurn) -> dict[str, Any]:
    """What a chain turn's rows say of the turn it continues: its number (`pt`, 0 for the first of
    a chain) and, when it is in another conversation, that one's ID (`pc`)."""
    link: dict[str, Any] = {}
    if turn.response is not None:
        link["resp"] = turn.response.id
    if conversation.is_chain:
        previous = turn.continues
        link["pt"] = previous.number if previous else 0
        if previous and previous.conversation_id != conversation.id:
            link["pc"] = previous.conversation_id
    return link


def _response_entity(conversation: Conversation, number: int, response: ResponseRecord) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": conversation.key,
        "RowKey": keys.response_row_key(response.id),
        "n": number,
        "conv": conversation.id,
    }
    parts = split_text(response.data)
    if len(parts) > PARTS_PER_ROW:
        raise AnswerTooLarge("The response's settings (tools, instructions, metadata) are too large to store.")
    entity.update({f"c{i:02d}": part for i, part in enumerate(parts)})
    return entity


def as_read(number: int, turn: NewTurn) -> Turn:
    """A stored turn as a read of its rows gives it back."""
    last = turn.outputs[-1:] or ()
    return Turn(
        number=number,
        inputs=turn.inputs,
        outputs=turn.outputs,
        created_at=turn.created_at,
        finish_reason=(turn.finish_reason or None) if last else None,
        usage=turn.usage if last else None,
        response_id=turn.response.id if turn.response is not None else None,
    )


def encode_parts(parts: tuple[ContentPart, ...]) -> str:
    encoded = [
        ["t", part]
        if isinstance(part, str)
        else ["i", part.url, part.detail]
        if isinstance(part, ImagePart)
        else ["f", part.data, part.filename]
        for part in parts
    ]
    return json.dumps(encoded, ensure_ascii=False, separators=(",", ":"))


def decode_parts(text: str) -> tuple[ContentPart, ...]:
    parts: list[ContentPart] = []
    for kind, *values in json.loads(text):
        if kind == "t":
            parts.append(values[0])
        elif kind == "i":
            parts.append(ImagePart(values[0], values[1]))
        else:
            parts.append(FilePart(values[0], values[1]))
    return tuple(parts)


def spans_rows(entity: Mapping[str, Any]) -> bool:
    """Whether the row is the head row of an item whose content parts take more than one row."""
    return bool(entity.get(PARTS_PROPERTY)) and int(entity.get("rows", 1)) > 1


# -- rows read back ----------------------------------------------------------------------------


def joined_parts(row: Mapping[str, Any]) -> str:
    return "".join(row[f"c{i:02d}"] for i in range(PARTS_PER_ROW) if f"c{i:02d}" in row)


def head_of_row(first: TableEntity) -> Head:
    """The head from the first row of a partition's turn range.

    A conversation stored before head rows existed starts at its newest message row instead: its
    newest turn is that row's, its floor 0, and its next turn creates the head.
    """
    if first["RowKey"] == keys.HEAD_ROW_KEY:
        return Head(
            latest_turn=int(first["n"]),
            floor=int(first["floor"]),
            etag=first.metadata["etag"],
            created_at=int(first["at"]) if first.get("at") is not None else None,
            metadata=json.loads(first["meta"]) if first.get("meta") else {},
            items=int(first["items"]) if first.get("items") is not None else None,
            updated_at=first.get("upd"),
        )
    return Head(latest_turn=keys.parse_item_row_key(first["RowKey"])[0])


def below(floor: int) -> str:
    """The RowKey a read of the turns above `floor` ends before: rows of turn `floor` and older
    sort from its prefix on."""
    return keys.turn_prefix(floor) if floor else keys.TURN_END


class ItemRead:
    """An item read back, with where it stands, and what its turn's rows say of the turn."""

    def __init__(self, turn: int, index: int, view: StoredItem, head: Mapping[str, Any]) -> None:
        self.turn = turn
        self.index = index
        self.view = view
        self.response_id: str | None = head.get("resp")
        self.continues: int | None = int(head["pt"]) if "pt" in head else None
        self.continues_in: str | None = head.get("pc")


async def load_blob(blobs: TurnBlobs | None, name: str) -> bytes:
    if blobs is None:
        raise StorageUnavailable("A stored turn is kept in Blob Storage, and no Blob Storage is configured.")
    return await blobs.get(name)


async def _stored_rows(
    rows: AsyncIterator[TableEntity], bound: str, start: str | None, blobs: TurnBlobs | None
) -> AsyncIterator[Mapping[str, Any]]:
    """The item rows among `rows`, a spilled turn's read from its blob in place of its spill row,
    from RowKey `start` (a read of part of a turn begins at its start, for its spill row) to `bound`."""
    async for entity in rows:
        if entity["RowKey"] >= bound:
            return
        blob = entity.get(spill.BLOB_PROPERTY)
        for row in spill.decode(entity["PartitionKey"], await load_blob(blobs, blob)) if blob else (entity,):
            if row["RowKey"] >= bound:
                return
            if start is None or row["RowKey"] >= start:
                yield row


async def read_items(
    rows: AsyncIterator[TableEntity],
    floor: int,
    blobs: TurnBlobs | None,
    *,
    start: str | None = None,
    end: str | None = None,
) -> AsyncIterator[ItemRead]:
    """Items newest first, each put back together from its rows, from RowKey `start` down to the
    turn above `floor` (or to RowKey `end`)."""
    bound = below(floor) if end is None else min(below(floor), end)
    item_rows: list[Mapping[str, Any]] = []
    async for entity in _stored_rows(rows, bound, start, blobs):
        if item_rows and entity["RowKey"][:14] != item_rows[0]["RowKey"][:14]:
            yield _item(item_rows)
            item_rows = []
        item_rows.append(entity)
    if item_rows:
        yield _item(item_rows)


async def read_turns(items: AsyncIterator[ItemRead]) -> AsyncIterator[Turn]:
    """Whole turns, newest first: a turn is yielded once an older item (or the end) is read."""
    group: list[ItemRead] = []
    async for read in items:
        if group and read.turn != group[0].turn:
            yield _turn(group)
            group = []
        group.append(read)
    if group:
        yield _turn(group)


def _turn(newest_first: list[ItemRead]) -> Turn:
    views = [read.view for read in reversed(newest_first)]
    outputs = [view for view in views if view.output]
    last = outputs[-1] if outputs else views[-1]
    newest = newest_first[0]
    return Turn(
        number=newest.turn,
        inputs=tuple(view.item for view in views if not view.output),
        outputs=tuple(view.item for view in outputs),
        created_at=views[0].created_at,
        finish_reason=last.finish_reason,
        usage=last.usage,
        response_id=newest.response_id,
        # Filled in by the chain reader, which knows the conversation.
        continues=TurnRef(newest.continues_in or "", newest.continues) if newest.continues else None,
    )


def _item(rows: list[Mapping[str, Any]]) -> ItemRead:
    head = rows[0]
    number, index, _ = keys.parse_item_row_key(head["RowKey"])
    if len(rows) != int(head["rows"]):
        raise StorageUnavailable("A stored item is incomplete.")
    text = "".join(row[f"c{i:02d}"] for row in rows for i in range(PARTS_PER_ROW) if f"c{i:02d}" in row)
    kind = KINDS[head["k"]]
    item: Item
    if kind == "message" and head.get(PARTS_PROPERTY):
        parts = decode_parts(text)
        joined = "".join(part for part in parts if isinstance(part, str))
        item = Message(head["id"], head["role"], joined, refusal=bool(head.get("refusal")), parts=parts)
    elif kind == "message":
        item = Message(head["id"], head["role"], text, refusal=bool(head.get("refusal")))
    elif kind == "function_call":
        item = FunctionCall(head["id"], head["call"], head["name"], text)
    elif kind == "compaction":
        item = Compaction(head["id"], text)
    elif head.get(PARTS_PROPERTY):
        parts = decode_parts(text)
        joined = "".join(part for part in parts if isinstance(part, str))
        item = FunctionCallOutput(head["id"], head["call"], joined, parts=parts)
    else:
        item = FunctionCallOutput(head["id"], head["call"], text)
    usage = None
    if "ptok" in head:
        usage = Usage(
            prompt_tokens=int(head["ptok"]),
            completion_tokens=int(head["ctok"]),
            cached_tokens=int(head.get("cached", 0)),
            reasoning_tokens=int(head.get("rtok", 0)),
        )
    view = StoredItem(
        turn=number,
        item=item,
        created_at=head["at"],
        output=bool(head.get("out")),
        finish_reason=head.get("fin") or None,
        usage=usage,
    )
    return ItemRead(number, index, view, head)
