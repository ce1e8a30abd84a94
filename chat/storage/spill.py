"""A turn too big for one Table transaction, kept as one blob of its rows.

A turn's item rows normally go into the turn's own transaction. When they do not fit one (more
than 100 entities or 4 MiB), the rows, exactly as they would have been stored, are written first
as one immutable blob under a name of their own; the transaction then holds the head, one spill
row that names the blob, and the turn's small rows (its response and Idempotency-Key). Readers
meet the spill row where the turn's rows would begin and read the blob in their place: the turn
becomes visible all at once, when the transaction commits, and a blob that no committed row names
is never read. docs/storage.md tells the whole protocol.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from chat.storage import keys

BLOB_PROPERTY = "blob"
# A spilled turn's items are numbered as any turn's; the last place is the spill row's.
MAX_SPILLED_ITEMS = keys.MAX_ITEM


def spill_row_key(number: int) -> str:
    """Where turn `number`'s rows begin: before the rows of its newest item (place 999)."""
    return keys.item_row_key(number, keys.MAX_ITEM, 0)


def turn_start_key(number: int) -> str:
    """The first RowKey a read of part of turn `number` must start from, to meet its spill row."""
    return keys.item_start_key(number, keys.MAX_ITEM)


def encode(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """The blob of a turn's rows, newest item first, as they sort (without their PartitionKey)."""
    return json.dumps(
        [{name: value for name, value in row.items() if name != "PartitionKey"} for row in rows],
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")


def decode(partition: str, data: bytes) -> list[dict[str, Any]]:
    return [{"PartitionKey": partition, **row} for row in json.loads(data)]


def spill_row(partition: str, number: int, blob: str) -> dict[str, Any]:
    return {"PartitionKey": partition, "RowKey": spill_row_key(number), "n": number, BLOB_PROPERTY: blob}
