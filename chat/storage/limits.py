"""Azure Table Storage's limits, enforced by our code because Azurite does not enforce them all.

Sizes follow the service's documented accounting: a string costs two bytes per UTF-16 code unit,
an entity is at most 1 MiB, a string property at most 64 KiB, a transaction at most 100
entities and 4 MiB of request body. The SDK writes JSON with every non-ASCII UTF-16 unit escaped
as \\uXXXX, so a transaction's size is measured on exactly that encoding.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

MAX_PROPERTY_BYTES = 64 * 1024
MAX_ENTITY_BYTES = 1024 * 1024
MAX_PROPERTIES = 252  # besides PartitionKey, RowKey and Timestamp
MAX_KEY_BYTES = 1024  # "up to 1 KiB": 512 UTF-16 units
MAX_TRANSACTION_ENTITIES = 100
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024
# Headers and multipart framing the SDK adds around each operation's JSON, measured generously.
TRANSACTION_OPERATION_OVERHEAD = 1024
TRANSACTION_BASE_OVERHEAD = 2048
FORBIDDEN_KEY_CHARS = frozenset("/\\#?") | {chr(c) for c in range(0x20)} | {chr(c) for c in range(0x7F, 0xA0)}

# How we split text: 16,000 code points are at most 32,000 UTF-16 units, 64,000 bytes; fifteen
# such parts and the row's other properties stay under 1 MiB.
PART_CHARS = 16_000
PARTS_PER_ROW = 15


class LimitExceeded(ValueError):
    """An entity or transaction that Azure would refuse."""


def utf16_units(text: str) -> int:
    # Characters beyond U+FFFF take two units; encoding counts them in C, not a loop over characters.
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def property_bytes(value: Any) -> int:
    if isinstance(value, str):
        return 4 + 2 * utf16_units(value)
    if isinstance(value, bool):
        return 1
    if isinstance(value, int | float | datetime):
        return 8
    if isinstance(value, bytes):
        return 4 + len(value)
    raise TypeError(f"unsupported property type {type(value).__name__}")


def entity_bytes(entity: Mapping[str, Any]) -> int:
    size = 4 + 2 * utf16_units(entity["PartitionKey"]) + 2 * utf16_units(entity["RowKey"])
    for name, value in entity.items():
        if name not in ("PartitionKey", "RowKey"):
            size += 8 + 2 * utf16_units(name) + property_bytes(value)
    return size


def check_entity(entity: Mapping[str, Any]) -> int:
    """Raise LimitExceeded for an entity Azure would refuse. Returns a bound no less than what
    `transaction_bytes` counts for it, so that a transaction well under its limit is not measured
    again: every string's length times what a character can grow to (`_MOST_BYTES_PER_CHAR`), and
    a property's sizes are counted exactly only when their bound could pass a limit."""
    for key in ("PartitionKey", "RowKey"):
        value = entity[key]
        if 2 * utf16_units(value) > MAX_KEY_BYTES or not FORBIDDEN_KEY_CHARS.isdisjoint(value):
            raise LimitExceeded(f"{key} {value[:40]!r} is not a valid Table key")
    if len(entity) - 2 > MAX_PROPERTIES:
        raise LimitExceeded(f"{len(entity) - 2} properties; the limit is {MAX_PROPERTIES}")
    chars = 0  # the entity's characters (and bytes), names and keys included
    for name, value in entity.items():
        chars += len(name)
        if isinstance(value, str | bytes):
            chars += len(value) + 1
            # A character is at most 4 bytes as Azure counts (two UTF-16 units); a byte is 1.
            if 4 * len(value) > MAX_PROPERTY_BYTES and property_bytes(value) - 4 > MAX_PROPERTY_BYTES:
                raise LimitExceeded(f"property {name} has {property_bytes(value) - 4:,} bytes")
        else:
            property_bytes(value)  # TypeError for a value no property holds
            chars += _SCALAR_CHARS
    if 4 * chars + _PROPERTY_SLACK * len(entity) > MAX_ENTITY_BYTES:
        size = entity_bytes(entity)
        if size > MAX_ENTITY_BYTES:
            raise LimitExceeded(f"entity of {size:,} bytes; the limit is {MAX_ENTITY_BYTES:,}")
    return TRANSACTION_OPERATION_OVERHEAD + _MOST_BYTES_PER_CHAR * chars + _PROPERTY_SLACK * len(entity)


# What one character (or byte) of an entity can grow to in `transaction_bytes`'s JSON: an astral
# character is two \uXXXX escapes, a byte's repr is \xNN with its backslash escaped again.
_MOST_BYTES_PER_CHAR = 12
# The characters a number, a boolean or a date stands for in check_entity's count, and what each
# property adds besides its name and value (quotes, colon, comma; Azure's 12 bytes a property).
_SCALAR_CHARS = 32
_PROPERTY_SLACK = 16


def transaction_bytes(entities: Iterable[Mapping[str, Any]]) -> int:
    total = TRANSACTION_BASE_OVERHEAD
    for entity in entities:
        total += TRANSACTION_OPERATION_OVERHEAD + len(json.dumps(entity, default=str))
    return total


def check_transaction(entities: Sequence[Mapping[str, Any]]) -> None:
    if len(entities) > MAX_TRANSACTION_ENTITIES:
        raise LimitExceeded(f"{len(entities)} entities; a transaction holds {MAX_TRANSACTION_ENTITIES}")
    bound = TRANSACTION_BASE_OVERHEAD + sum(check_entity(entity) for entity in entities)
    if bound <= MAX_TRANSACTION_BYTES:
        return
    size = transaction_bytes(entities)
    if size > MAX_TRANSACTION_BYTES:
        raise LimitExceeded(f"transaction of {size:,} bytes; the limit is {MAX_TRANSACTION_BYTES:,}")


def split_text(text: str) -> list[str]:
    """Parts of at most PART_CHARS code points; ''.join(parts) == text. Empty text is one part."""
    return [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)] or [""]
