"""The facts of the owner's list rows that the list's writes (conversations.py) and its pages
(list_pages.py) share: the unconfirmed mark, the floor an entry was written under, the time an
activity row orders by, and how far the list may lag its conversations."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from chat.storage import keys

UNCONFIRMED = "unconfirmed"  # on an entry written ahead of what it lists: Unix seconds of that write
# A continuing turn updates the list when this worker listed its conversation longer ago than this.
LIST_LAG_SECONDS = 300
LAG_MICROS = LIST_LAG_SECONDS * 1_000_000

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def floor_of(record: Mapping[str, Any]) -> int:
    # Records written before floors existed list a conversation never deleted.
    return int(record.get("floor", 0))


def micros(timestamp: str) -> int:
    """`updated_at` in microseconds since the epoch: the activity order is the order of the times shown."""
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return (moment - EPOCH) // timedelta(microseconds=1)


def micros_of_key(key: str) -> int:
    """The time an activity key orders by, in microseconds (a key to the millisecond: its start)."""
    digits = key[1 : len(key) - 64]
    return keys.MAX_MICROS - int(digits) if len(digits) == 16 else (keys.MAX_MICROS // 1000 - int(digits)) * 1000
