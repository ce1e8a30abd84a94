"""IDs: the rules for those a client names (a conversation ID, an Idempotency-Key), and every ID the
engine mints (items, conversations, response chains, responses).

Every front door applies the same rules, so a conversation one door made is one the other can
name. An ID minted for a request with an Idempotency-Key is derived from it, so a retry gets the ID
its first try got; any other is random.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from chat.engine.errors import InvalidRequest

# A response chain (responses linked by previous_response_id, in no conversation) is kept like a
# conversation whose ID starts with a control character: no conversation ID a client can give.
CHAIN_MARK = "\x1f"
RESPONSE_PREFIX = "resp_"
RESPONSE_RANDOM_HEX = 24
ITEM_PREFIXES = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "compaction": "cmp"}
ITEM_RANDOM_HEX = 24
_PARTITION_HEX = 64  # Conversation.key
# The conversation (its key) whose turn is running: the items minted meanwhile are stored there.
_minting_in: ContextVar[str | None] = ContextVar("minting_in", default=None)

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


_LOWER_HEX = frozenset("0123456789abcdef")


def is_lower_hex(text: str) -> bool:
    """Whether every character of `text` is a lower-case hex digit, as digest and token_hex write them."""
    return _LOWER_HEX.issuperset(text)


def digest(*parts: str) -> str:
    """SHA-256, in hex, of length-prefixed parts: two different lists of parts never hash alike."""
    h = hashlib.sha256()
    for part in parts:
        # surrogatepass: an owner from a client principal may hold a lone surrogate (JSON "\ud800");
        # it still hashes, and to bytes no other string encodes to.
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def new_item_id(kind: str, partition: str | None = None) -> str:
    """An ID no other item has: the kind's prefix, the key of the conversation it is stored in
    (`partition`, or the one whose turn is running: see `minting_in`), and 24 random hex digits.
    An item's ID so says where to find it, as a response's does."""
    where = partition if partition is not None else _minting_in.get()
    return f"{ITEM_PREFIXES[kind]}_{where or ''}{secrets.token_hex(ITEM_RANDOM_HEX // 2)}"


def item_partition(item_id: str) -> str | None:
    """The conversation key an item's ID names, or None if it names none (an ID minted before
    IDs said where their item is, or outside a turn)."""
    prefix, _, body = item_id.partition("_")
    if prefix not in _ITEM_PREFIX_VALUES or len(body) != _PARTITION_HEX + ITEM_RANDOM_HEX:
        return None
    if not is_lower_hex(body):
        return None
    return body[:_PARTITION_HEX]


_ITEM_PREFIX_VALUES = frozenset(ITEM_PREFIXES.values())


@contextmanager
def minting_in(partition: str) -> Iterator[None]:
    """While a turn of the conversation with key `partition` runs: the items it mints (the model's
    outputs, a compaction) carry it in their IDs. Tasks started meanwhile inherit it."""
    token = _minting_in.set(partition)
    try:
        yield
    finally:
        _minting_in.reset(token)


def new_conversation_id(owner: str, idempotency_key: str | None) -> str:
    """A new unguessable conversation ID (the chat routes'), or, for a retried request, the one its
    first try got."""
    if idempotency_key is None:
        return secrets.token_urlsafe(18)
    return base64.urlsafe_b64encode(bytes.fromhex(digest("new conversation", owner, idempotency_key))[:18]).decode()


def new_openai_conversation_id() -> str:
    """A conversation ID as OpenAI makes them: `conv_` and 48 hex digits."""
    return "conv_" + secrets.token_hex(24)


def new_chain_id(owner: str, idempotency_key: str | None) -> str:
    """A new response chain's ID, or, for a retried request, the one its first try got."""
    if idempotency_key is None:
        return CHAIN_MARK + secrets.token_hex(16)
    return CHAIN_MARK + digest("new chain", owner, idempotency_key)[:32]


def response_id_prefix(conversation_key: str) -> str:
    """What the ID of every response stored in that conversation (or chain) begins with."""
    return f"{RESPONSE_PREFIX}{conversation_key}"


def new_response_id(conversation_key: str | None) -> str:
    """A response's ID: where it is stored (its conversation's key) and a random part. A response
    that is not stored has the random part alone, and is never found."""
    return f"{RESPONSE_PREFIX}{conversation_key or ''}{secrets.token_hex(RESPONSE_RANDOM_HEX // 2)}"
