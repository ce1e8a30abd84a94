"""The engine's rules for the IDs a client names: a conversation ID and an Idempotency-Key.

Every front door applies them, so a conversation one door made is one the other can name.
"""

from __future__ import annotations

import unicodedata

from chat.engine.errors import InvalidRequest

MAX_CONVERSATION_ID_CHARS = 1024
# Unicode categories a conversation ID may not hold, so that an ID shows as what it is: controls,
# format characters (a right-to-left override or a zero-width space would make one ID look like
# another), lone surrogates, private use, unassigned code points (as this Python's Unicode
# database knows them), and the line and paragraph separators. Spaces (Zs) are printable.
NOT_PRINTABLE = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))
MAX_IDEMPOTENCY_KEY_CHARS = 255


def validate_conversation_id(value: str) -> str:
    """A conversation ID as given: 1 to 1,024 printable characters, `/ \\ # ?` and spaces included."""
    if not 1 <= len(value) <= MAX_CONVERSATION_ID_CHARS or not _is_printable(value):
        raise InvalidRequest(
            f"A conversation ID (sessionState) is 1 to {MAX_CONVERSATION_ID_CHARS:,} printable characters.",
            code="invalid_conversation_id",
        )
    return value


def parse_idempotency_key(value: str | None) -> str | None:
    """An Idempotency-Key header: 1 to 255 printable ASCII characters, or none."""
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_IDEMPOTENCY_KEY_CHARS or not value.isascii() or not value.isprintable():
        raise InvalidRequest(
            f"Idempotency-Key is 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters.",
            code="invalid_idempotency_key",
        )
    return value


def _is_printable(value: str) -> bool:
    return not any(unicodedata.category(ch) in NOT_PRINTABLE for ch in value)
