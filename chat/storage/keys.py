"""Table keys: how an owner and a conversation ID become PartitionKeys and RowKeys.

Conversation IDs may hold any printable character, including `/ \\ # ?` that Table keys forbid,
and be 1,024 characters long. Keys are therefore hashes (64 hex digits), never the raw ID, and
the owner is part of the hash: the same ID under two owners is two partitions.

RowKeys in a conversation's partition sort newest first (an inverted turn number), so a query
that reads the newest turns stops after the rows it needs. The head sorts before every turn row,
so the same query reads it first.

    t                                       the head: the newest turn number (`n`) and the floor
                                            (`floor`) a delete raised; turns at or below it are gone
    t{9999999999 - turn:010}{999 - item:03}{row:03}
                                            a row of the turn's item number `item` (0 is the first
                                            input): a turn's newest item sorts first
    i{sha256(idempotency key)}              the turn an Idempotency-Key produced
    x{item ID}                              where an item is (`n` its turn, `i` its place in it), so
                                            that it can be read, deleted or paged from by its ID
    r{response ID}                          a response of the OpenAI-compatible door: its turn (`n`)
                                            and what that door keeps of it (text parts `c00`...)
    p{response ID}                          a response still streaming (runs.py); once its turn is
                                            stored, a closed mark (`done`)

Every turn's transaction updates the head under the ETag it read (or creates it), so concurrent
turns and a delete clash on it; the head outlives a delete, so turn numbers are never reused.

In the owner's partition of the conversations table:

    c{conversation hash}                    the conversation's record, or once deleted its tombstone
                                            (`floor` and `deleted` only)
    a{inverted µs:016}{conversation hash}   its place in the activity order, to the microsecond of
                                            `updated_at` (rows written before were to the millisecond,
                                            `a{inverted ms:013}`: they sort within a millisecond of it)
    q{YYYYMMDD}-{shard:02}                  one shard of the owner's token count for a UTC day (the
                                            daily quota); the day's count is the sum of its shards
"""

from __future__ import annotations

from chat.engine.ids import digest, is_lower_hex

MAX_TURN = 9_999_999_999
MAX_MICROS = 9_999_999_999_999_999
TURN_PREFIX = "t"
HEAD_ROW_KEY = TURN_PREFIX  # a prefix of every turn row, so it sorts first
TURN_END = "u"  # every turn row sorts below it
IDEMPOTENCY_PREFIX = "i"
ITEM_INDEX_PREFIX = "x"
RESPONSE_PREFIX = "r"
RUN_PREFIX = "p"
RECORD_PREFIX = "c"
ACTIVITY_PREFIX = "a"
ACTIVITY_END = "b"
USAGE_PREFIX = "q"
MAX_ITEM = 999


def owner_partition(owner: str) -> str:
    return digest("owner", owner)


def turn_prefix(turn: int) -> str:
    if not 1 <= turn <= MAX_TURN:
        raise ValueError(f"turn {turn} out of range")
    return f"{TURN_PREFIX}{MAX_TURN - turn:010d}"


def item_row_key(turn: int, item: int, row: int) -> str:
    return f"{item_start_key(turn, item)}{row:03d}"


def item_start_key(turn: int, item: int) -> str:
    """The first RowKey of an item: a query from it reads that item, then older ones."""
    if not 0 <= item <= MAX_ITEM:
        raise ValueError(f"item {item} out of range")
    return f"{turn_prefix(turn)}{MAX_ITEM - item:03d}"


def is_item_start_key(key: str) -> bool:
    """Whether `key` is what item_start_key makes: where a page of items may begin."""
    return len(key) == 14 and key[0] == TURN_PREFIX and key[1:14].isdigit()


def turn_of(key: str) -> int:
    """The turn of an item's RowKey, or of where an item starts."""
    return MAX_TURN - int(key[1:11])


def parse_item_row_key(row_key: str) -> tuple[int, int, int]:
    """(turn, item, row) of an item's RowKey."""
    return MAX_TURN - int(row_key[1:11]), MAX_ITEM - int(row_key[11:14]), int(row_key[14:17])


def is_activity_row_key(key: str) -> bool:
    """Whether `key` is what activity_row_key makes: where a page of conversations may start."""
    return (
        len(key) in (78, 81)  # to the millisecond (written before) or to the microsecond
        and key[0] == ACTIVITY_PREFIX
        and key[1 : len(key) - 64].isdigit()
        and is_lower_hex(key[-64:])
    )


def item_index_row_key(item_id: str) -> str:
    return ITEM_INDEX_PREFIX + item_id


def response_row_key(response_id: str) -> str:
    return RESPONSE_PREFIX + response_id


def run_row_key(response_id: str) -> str:
    """A response still being answered (runs.py); once its turn is stored, a closed mark."""
    return RUN_PREFIX + response_id


def after_item_key(turn: int, item: int) -> str:
    """The first RowKey after every row of an item: where older items begin (':' sorts after digits)."""
    return item_start_key(turn, item) + ":"


def idempotency_row_key(idempotency_key: str) -> str:
    return IDEMPOTENCY_PREFIX + digest("idempotency", idempotency_key)


def record_row_key(conversation: str) -> str:
    return RECORD_PREFIX + conversation


def activity_row_key(micros: int, conversation: str) -> str:
    return f"{ACTIVITY_PREFIX}{MAX_MICROS - micros:016d}{conversation}"


def usage_row_key(day: str, shard: int) -> str:
    return f"{USAGE_PREFIX}{day}-{shard:02d}"


def usage_range(day: str) -> tuple[str, str]:
    """The RowKeys [low, high) of a day's token count: its shards, and the one row `q{day}` that
    earlier versions kept ("-" sorts below ".")."""
    return USAGE_PREFIX + day, f"{USAGE_PREFIX}{day}."
