"""Conversation history in Azure Table Storage: the engine's TurnStore.

One partition per (owner, conversation): every row of a turn's items, and the conversation's head row, are
written by one entity group transaction, so a turn is stored whole or not at all. Each turn is
inserted under the next number and updates the head under the ETag it read; a concurrent turn or
a delete that changed the head first makes the whole transaction fail (TurnConflict), and the
service reads the head again and renumbers, or, if a delete raised its floor, gives up. Reading
the window is one query over RowKeys that sort newest first, the head first, stopped as soon as
the token budget is spent: its cost follows the window, not the conversation. The key layout is in
keys.py, the size limits in limits.py, and the whole protocol in docs/storage.md. The
owner's list of conversations is in conversations.py, the daily token counts in quota.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableEntity, TableTransactionError, UpdateMode

from chat.engine.errors import (
    AnswerTooLarge,
    ConversationBusy,
    ConversationNotFound,
    InvalidRequest,
    StorageUnavailable,
    TurnConflict,
    TurnOutcomeUnknown,
)
from chat.engine.history import (
    Conversation,
    Head,
    History,
    ItemPage,
    NewTurn,
    Page,
    ResponseRecord,
    StoredItem,
    StoredResponse,
    epoch_seconds,
    response_partition,
)
from chat.engine.items import FunctionCall, FunctionCallOutput, Item, Message, Turn, TurnRef, Usage
from chat.storage import keys, spill
from chat.storage.blobs import TurnBlobs
from chat.storage.limits import MAX_TRANSACTION_ENTITIES, PARTS_PER_ROW, LimitExceeded, check_transaction, split_text
from chat.storage.tables import (
    Table,
    change_under_etag,
    decode_cursor,
    encode_cursor,
    get_entity_or_none,
    range_rows,
    replace_or_create,
    storage_errors,
)

log = logging.getLogger(__name__)

QUERY_PAGE_ROWS = 32  # the first page of a read; each further page is twice the last
# Windows this worker keeps, to answer a read whose head has not changed since: at most this many
# tokens' worth (as the engine counts them) over every window kept, the least recently used first out.
WINDOW_CACHE_TOKENS = 8_000_000
IF_NOT_MODIFIED = MatchConditions.IfNotModified
MAX_FLOOR_ATTEMPTS = 64  # a delete's conditional update of the head, against turns that keep winning
KIND_CODES = {"message": "m", "function_call": "fc", "function_call_output": "fco"}
KINDS = {code: kind for kind, code in KIND_CODES.items()}


class HistoryStore:
    """The messages of every conversation, in the messages table."""

    def __init__(
        self, table: Table, *, blobs: TurnBlobs | None = None, window_cache_tokens: int = WINDOW_CACHE_TOKENS
    ) -> None:
        self._table = table
        self._messages = table.client
        self._blobs = blobs  # where a turn too big for one transaction goes (spill.py); None: refused
        self._windows = _Windows(window_cache_tokens)

    async def close(self) -> None:
        await self._table.close()
        if self._blobs is not None:
            await self._blobs.close()

    async def ping(self) -> None:
        """One cheap read, to tell whether storage answers."""
        await self._table.ready()
        with storage_errors():
            async for _ in self._messages.query_entities("PartitionKey eq 'health'", results_per_page=1):
                break

    # -- the turn's critical path ------------------------------------------------------------

    async def read_history(
        self,
        conversation: Conversation,
        token_budget: int,
        turn_cost: Callable[[Turn], int],
        idempotency_key: str | None = None,
    ) -> History:
        """The newest whole turns that fit the budget, the head they were read under, and the turn
        a retried request produced."""
        await self._table.ready()
        if idempotency_key is None:
            window, head = await self._window(conversation, token_budget, turn_cost)
            return History(turns=window, head=head)
        (window, head), key_row = await asyncio.gather(
            self._window(conversation, token_budget, turn_cost),
            self._key_row(conversation, idempotency_key),
        )
        found = await self._keyed_turn(conversation, key_row, head.floor)
        replay, replay_hash = found if found else (None, None)
        return History(turns=window, head=head, replay=replay, replay_request_hash=replay_hash)

    async def _window(
        self, conversation: Conversation, token_budget: int, turn_cost: Callable[[Turn], int]
    ) -> tuple[list[Turn], Head]:
        """The window: the same query always, but when the head it reads first is the one this
        worker last saw (its ETag changes with every write of the conversation), the window kept
        then is the answer, and the rest of the rows are not read."""
        head, rows = await self._from_head(conversation.key)
        kept = self._windows.get(conversation.key, head.etag, token_budget)
        if kept is not None:
            await rows.aclose()  # type: ignore[attr-defined]  # an async generator
            return list(kept.turns), head
        window: list[Turn] = []
        spent = 0
        async for turn in _turns(_items(rows, head.floor, self._blobs)):
            cost = turn_cost(turn)
            if spent + cost > token_budget:
                break
            spent += cost
            window.append(turn)
        window.reverse()
        self._windows.put(conversation.key, head.etag, token_budget, turn_cost, window, [turn_cost(t) for t in window])
        return window, head

    async def read_head(self, conversation: Conversation) -> Head:
        """The head alone: a one-row query, since the head sorts first."""
        await self._table.ready()
        return await self._head_of(conversation.key)

    async def _head_of(self, partition: str) -> Head:
        async for entity in range_rows(
            self._messages,
            partition,
            keys.HEAD_ROW_KEY,
            keys.TURN_END,
            first_page=1,
            select=["RowKey", "n", "floor", "at", "meta", "items"],
        ):
            return _head(entity)
        return Head()

    async def find_idempotent(
        self, conversation: Conversation, idempotency_key: str, floor: int = 0
    ) -> tuple[Turn, str] | None:
        """The turn an Idempotency-Key produced above `floor`, and its request's hash."""
        return await self._keyed_turn(conversation, await self._key_row(conversation, idempotency_key), floor)

    async def _key_row(self, conversation: Conversation, idempotency_key: str) -> TableEntity | None:
        with storage_errors():
            try:
                return await self._messages.get_entity(conversation.key, keys.idempotency_row_key(idempotency_key))
            except ResourceNotFoundError:
                return None

    async def _keyed_turn(
        self, conversation: Conversation, key_row: TableEntity | None, floor: int
    ) -> tuple[Turn, str] | None:
        if key_row is None:
            return None
        if int(key_row["n"]) <= floor:
            # Left by a delete not finished yet: it would block this key's next turn (its row is
            # inserted, so that two requests with one key clash), so it goes now, unless a turn
            # replaced it since.
            with storage_errors(), suppress(ResourceModifiedError):
                await self._messages.delete_entity(
                    conversation.key,
                    key_row["RowKey"],
                    etag=key_row.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            return None
        turn = await self.find_turn(conversation, int(key_row["n"]))
        return (turn, key_row.get("req", "")) if turn else None

    async def index_items(self, conversation: Conversation, number: int, items: Sequence[Item]) -> None:
        """Where each item is, in the owner's partition of this table (a row per item ID: the
        conversation, the turn and the place in it), so an item is found by its ID alone. Written
        beside the turn's transaction: a row may name a turn that was never stored, or one deleted
        since, and a reader checks the turn (find_owned_item)."""
        partition = keys.owner_partition(conversation.owner)
        rows = [
            {
                "PartitionKey": partition,
                "RowKey": keys.item_index_row_key(item.id),
                "conv": conversation.id,
                "n": number,
                "i": index,
            }
            for index, item in enumerate(items)
        ]
        await self._table.ready()
        with storage_errors():
            for start in range(0, len(rows), MAX_TRANSACTION_ENTITIES):
                batch = rows[start : start + MAX_TRANSACTION_ENTITIES]
                await self._messages.submit_transaction(
                    [("upsert", row, {"mode": UpdateMode.REPLACE}) for row in batch]
                )

    async def find_owned_item(self, owner: str, item_id: str) -> Item | None:
        await self._table.ready()
        row = await get_entity_or_none(self._messages, keys.owner_partition(owner), keys.item_index_row_key(item_id))
        if row is None:
            return None
        conversation = Conversation(owner, row["conv"])
        turn, head = await asyncio.gather(self.find_turn(conversation, int(row["n"])), self.read_head(conversation))
        if turn is None or turn.number <= head.floor:
            return None  # never stored, or deleted since
        index = int(row["i"])
        items = turn.items
        return items[index] if index < len(items) and items[index].id == item_id else None

    async def find_turn(self, conversation: Conversation, number: int) -> Turn | None:
        rows = self._rows(conversation.key, keys.turn_prefix(number), keys.TURN_END)
        async for turn in _turns(_items(rows, 0, self._blobs)):
            return turn if turn.number == number else None
        return None

    async def append_turn(self, conversation: Conversation, head: Head, turn: NewTurn) -> int:
        """Store the user and assistant messages as the turn after `head`, atomically; its number.

        The transaction inserts the turn's rows and replaces the head under the ETag it was read
        with (creates it, if there was none). Raises TurnConflict when a concurrent turn or a
        delete changed the head first, or a concurrent request stored the idempotency key.
        """
        await self._table.ready()  # a new chain's first turn reads nothing before it
        number = head.latest_turn + 1
        created_at = head.created_at if head.created_at is not None else epoch_seconds(turn.created_at)
        head_row = _head_entity(
            conversation.key, number, head.floor, created_at, head.metadata, head.item_count + len(turn.items)
        )
        entities, blob = await self._prepared(conversation, number, turn, head_row)
        operations: list[Any] = [("create", entity) for entity in entities]
        operations.append(replace_or_create(head_row, head.etag))
        with storage_errors():
            try:
                results = await self._messages.submit_transaction(operations)
            except TableTransactionError as e:
                self._windows.forget(conversation.key)
                await self._unused(blob)
                if getattr(e, "error_code", None) in ("EntityAlreadyExists", "UpdateConditionNotSatisfied"):
                    raise TurnConflict() from None
                raise  # refused as a whole: nothing of it is stored
            except (AzureError, TimeoutError) as e:
                self._windows.forget(conversation.key)
                if isinstance(e, ClientAuthenticationError) or (
                    isinstance(e, HttpResponseError) and (e.status_code or 0) < 500
                ):
                    await self._unused(blob)
                    raise
                # No answer (the connection dropped, whether before or after the request went:
                # the client cannot always tell), or a server error, which may come after the
                # write: the turn may be stored. The caller reads the conversation to learn which.
                log.warning("storage did not confirm a turn's transaction: %s", e)
                raise TurnOutcomeUnknown() from e
        # The head's new ETag: the window kept under the old one, with this turn, is the next read's.
        new_etag = (results[-1] or {}).get("etag") if results else None
        self._windows.advance(conversation.key, head.etag, new_etag, _as_read(number, turn))
        return number

    def check_storable(self, conversation: Conversation, turn: NewTurn) -> None:
        """Raise AnswerTooLarge, before anything is written, for a turn that cannot be stored: one
        no transaction holds, when no Blob Storage is configured, or one whose rows spilled to a
        blob still leave more than one transaction holds (too many items, or too large settings).

        A turn's size does not depend on its number (RowKeys have a fixed length).
        """
        entities = self._turn_entities(conversation, 1, turn)
        head_row = _head_entity(conversation.key, keys.MAX_TURN, keys.MAX_TURN, 0, MAX_METADATA, keys.MAX_TURN)
        if not _fits([*entities, head_row]):
            self._spilled(conversation, 1, turn, entities, head_row)

    async def _prepared(
        self, conversation: Conversation, number: int, turn: NewTurn, head_row: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The rows the turn's transaction creates beside the head, and the blob its rows went to
        when they do not fit one transaction (written here, with the turn's item index, before it)."""
        entities = self._turn_entities(conversation, number, turn)
        if _fits([*entities, head_row]):
            return entities, None
        rows, index_rows, small = self._spilled(conversation, number, turn, entities, head_row)
        assert self._blobs is not None  # _spilled refuses the turn without them
        name = TurnBlobs.new_name(conversation.key, number)
        await self._blobs.put(name, spill.encode(rows))
        # Beside the transaction, as the owner's index: a row may name a turn that was never
        # stored, and every reader of it checks the item it finds there.
        with storage_errors():
            for start in range(0, len(index_rows), MAX_TRANSACTION_ENTITIES):
                batch = index_rows[start : start + MAX_TRANSACTION_ENTITIES]
                await self._messages.submit_transaction(
                    [("upsert", row, {"mode": UpdateMode.REPLACE}) for row in batch]
                )
        return [*small, spill.spill_row(conversation.key, number, name)], name

    def _spilled(
        self,
        conversation: Conversation,
        number: int,
        turn: NewTurn,
        entities: list[dict[str, Any]],
        head_row: dict[str, Any],
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """The turn's rows split for a blob: its item rows (the blob's), its item index rows, and
        the small rows that stay in the transaction. AnswerTooLarge if it cannot be stored so."""
        if self._blobs is None:
            log.warning("a turn of %d items fits no transaction, and no Blob Storage is configured", len(turn.items))
            raise AnswerTooLarge("The turn is too large to store: no Blob Storage is configured for large turns.")
        if len(turn.items) > spill.MAX_SPILLED_ITEMS:
            raise AnswerTooLarge(f"A turn holds at most {spill.MAX_SPILLED_ITEMS} items.")
        rows: list[dict[str, Any]] = []
        index_rows: list[dict[str, Any]] = []
        small: list[dict[str, Any]] = []
        for entity in entities:
            key = entity["RowKey"]
            if key.startswith(keys.TURN_PREFIX):
                rows.append(entity)
            elif key.startswith(keys.ITEM_INDEX_PREFIX):
                index_rows.append(entity)
            else:
                small.append(entity)
        name = TurnBlobs.new_name(conversation.key, number)
        _check_storable([*small, spill.spill_row(conversation.key, number, name), head_row])
        return rows, index_rows, small

    async def _unused(self, blob: str | None) -> None:
        """A turn's blob whose transaction was refused: nothing will ever name it."""
        if blob is not None and self._blobs is not None:
            await self._blobs.forget(blob)

    def _turn_entities(self, conversation: Conversation, number: int, turn: NewTurn) -> list[dict[str, Any]]:
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
            if not conversation.is_chain:
                # Items of a chain are reached through their response, never by their own ID.
                entities.append(
                    {
                        "PartitionKey": partition,
                        "RowKey": keys.item_index_row_key(items[index].id),
                        "n": number,
                        "i": index,
                    }
                )
        if turn.response is not None:
            entities.append(_response_entity(conversation, number, turn.response))
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

    # -- reading items ----------------------------------------------------------------------

    async def items_page(self, conversation: Conversation, limit: int, cursor: str | None) -> Page[StoredItem]:
        """Up to `limit` items, newest first in storage, returned oldest first."""
        await self._table.ready()
        partition = conversation.key
        start = None
        if cursor:
            start = decode_cursor(cursor, keys.is_item_start_key)
            # A later page needs the floor too: rows a delete left behind are never shown.
            floor = (await self.read_head(conversation)).floor
            rows = self._rows(partition, spill.turn_start_key(keys.turn_of(start)), _below(floor))
        else:
            head, rows = await self._from_head(partition)
            floor = head.floor
        newest_first: list[StoredItem] = []
        next_cursor = None
        async for stored in _items(rows, floor, self._blobs, start=start):
            if len(newest_first) == limit:
                next_cursor = encode_cursor(keys.item_start_key(stored.turn, stored.index))
                break
            newest_first.append(stored.view)
        if not newest_first and cursor is None:
            raise ConversationNotFound()
        newest_first.reverse()
        return Page(items=newest_first, next_cursor=next_cursor)

    async def _from_head(self, partition: str) -> tuple[Head, AsyncIterator[TableEntity]]:
        """The head, and the message rows after it, newest first: one query from RowKey `t`."""
        rows = self._rows(partition, keys.HEAD_ROW_KEY, keys.TURN_END)
        first = await anext(rows, None)
        if first is None:
            return Head(), rows
        if first["RowKey"] == keys.HEAD_ROW_KEY:
            return _head(first), rows
        return _head(first), _prepend(first, rows)

    def _rows(self, partition: str, start: str, end: str) -> AsyncIterator[TableEntity]:
        """Rows from RowKey `start` up to `end`, in pages that double in size from QUERY_PAGE_ROWS:
        a read that stops early (a small window) fetches one small page, and a long one reads at most
        about twice the rows it uses."""
        return range_rows(self._messages, partition, start, end, first_page=QUERY_PAGE_ROWS)

    # -- conversations, items and responses of the OpenAI-compatible door ---------------------

    async def create_conversation(
        self, conversation: Conversation, created_at: int, metadata: Mapping[str, str], turn: NewTurn | None
    ) -> None:
        """Create the conversation (its ID is new), with its first items as turn 1, atomically."""
        await self._table.ready()
        items = len(turn.items) if turn is not None else 0
        head_row = _head_entity(conversation.key, 1 if turn is not None else 0, 0, created_at, metadata, items)
        entities, blob = await self._prepared(conversation, 1, turn, head_row) if turn is not None else ([], None)
        with storage_errors():
            try:
                await self._messages.submit_transaction([("create", entity) for entity in [*entities, head_row]])
            except TableTransactionError as e:
                await self._unused(blob)
                if getattr(e, "error_code", None) == "EntityAlreadyExists":
                    raise TurnConflict() from None
                raise

    async def update_metadata(self, conversation: Conversation, metadata: Mapping[str, str]) -> Head:
        """Replace the conversation's metadata; the head as written. ConversationNotFound if it has none."""
        await self._table.ready()
        partition = conversation.key

        def change(head: Head) -> list[Any]:
            if not head.exists:
                raise ConversationNotFound()
            row = _head_entity(partition, head.latest_turn, head.floor, head.created_at, metadata, head.item_count)
            return [replace_or_create(row, head.etag)]

        self._windows.forget(conversation.key)
        head = await change_under_etag(
            self._messages,
            lambda: self.read_head(conversation),
            change,
            attempts=MAX_FLOOR_ATTEMPTS,
            busy=ConversationBusy("Too many changes at once on this conversation; try again."),
        )
        return Head(head.latest_turn, head.floor, None, head.created_at, dict(metadata))

    async def read_chain(
        self, owner: str, start: TurnRef, token_budget: int, turn_cost: Callable[[Turn], int]
    ) -> list[Turn]:
        """The turn `start` and the turns it continues, newest first, as far as the budget goes;
        returned oldest first.

        A conversation's turn continues the one before it; a chain's turn says which turn it
        continues, in its chain or (the first turn of a chain that branched off a conversation's
        response) in a conversation. Turns that follow on one another are read by one query; each
        branch point costs one more, so the cost follows the window, not the length of the chain.
        """
        await self._table.ready()
        window: list[Turn] = []
        spent = 0
        ref: TurnRef | None = start
        while ref is not None:
            conversation = Conversation(owner, ref.conversation_id)
            wanted, ref = ref, None
            floor = 0  # a chain is never deleted
            if not conversation.is_chain:
                # A conversation a chain branched off may have been deleted since: its floor says.
                floor = (await self._head_of(conversation.key)).floor
            if wanted.number <= floor:
                break
            rows = self._rows(conversation.key, keys.turn_prefix(wanted.number), keys.TURN_END)
            async for turn in _turns(_items(rows, floor, self._blobs)):
                if turn.number != wanted.number:
                    break  # not there: the chain ends
                cost = turn_cost(turn)
                if spent + cost > token_budget:
                    window.reverse()
                    return window
                spent += cost
                window.append(turn)
                following = _continued(conversation, turn)
                if following is None:
                    break
                if following.conversation_id == conversation.id and following.number == turn.number - 1:
                    wanted = following  # the next rows of this query
                    continue
                ref = following  # another query
                break
        window.reverse()
        return window

    async def read_response(self, owner: str, response_id: str) -> StoredResponse | None:
        """A stored response of this owner and its turn, or None."""
        found = await self._response_row(owner, response_id)
        if found is None:
            return None
        conversation, row = found
        turn = await self.find_turn(conversation, int(row["n"]))
        if turn is None:
            return None
        return StoredResponse(ResponseRecord(response_id, _joined_parts(row)), conversation.id, turn)

    async def locate_response(self, owner: str, response_id: str) -> TurnRef | None:
        """Where a stored response of this owner is (its conversation or chain, and turn), or None:
        what a response that continues it needs, without reading the turn itself."""
        found = await self._response_row(owner, response_id)
        return TurnRef(found[0].id, int(found[1]["n"])) if found is not None else None

    async def delete_response(self, owner: str, response_id: str) -> bool:
        """Forget a stored response (its turn stays, as the context of what continued it)."""
        found = await self._response_row(owner, response_id)
        if found is None:
            return False
        conversation, row = found
        with storage_errors(), suppress(ResourceNotFoundError):
            await self._messages.delete_entity(conversation.key, row["RowKey"])
        return True

    async def _response_row(self, owner: str, response_id: str) -> tuple[Conversation, TableEntity] | None:
        partition = response_partition(response_id)
        if partition is None:
            return None
        await self._table.ready()
        row, head = await asyncio.gather(
            get_entity_or_none(self._messages, partition, keys.response_row_key(response_id)),
            self._head_of(partition),
        )
        # The ID names a partition; the row says whose conversation it is, so another owner's is not
        # found; and a response of turns a delete has raised the floor over is gone with them.
        if row is None or Conversation(owner, row["conv"]).key != partition or int(row["n"]) <= head.floor:
            return None
        return Conversation(owner, row["conv"]), row

    async def get_item(self, conversation: Conversation, item_id: str) -> StoredItem | None:
        head, where = await self._find_item(conversation, item_id)
        if where is None:
            return None
        number, index = where
        rows = self._rows(conversation.key, spill.turn_start_key(number), keys.after_item_key(number, index))
        async for read in _items(rows, head.floor, self._blobs, start=keys.item_start_key(number, index)):
            return read.view
        return None

    async def delete_item(self, conversation: Conversation, item_id: str) -> bool:
        """Remove one item's rows, in one transaction that marks its index row gone (it keeps the
        item's place, for a page that goes on after it) and counts it out of the head, under the
        head's ETag. False if there is no such item."""
        partition = conversation.key
        self._windows.forget(partition)
        for _ in range(MAX_FLOOR_ATTEMPTS):
            head, index = await self._index_row(conversation, item_id)
            if index is None or index.get("gone"):
                return False
            number, place = int(index["n"]), int(index["i"])
            operations: list[Any] = [
                replace_or_create(
                    _head_entity(
                        partition,
                        head.latest_turn,
                        head.floor,
                        head.created_at,
                        head.metadata,
                        max(0, head.item_count - 1),
                    ),
                    head.etag,
                ),
                (
                    "update",
                    {"PartitionKey": partition, "RowKey": index["RowKey"], "n": number, "i": place, "gone": True},
                    {"mode": UpdateMode.REPLACE, "etag": index.metadata["etag"], "match_condition": IF_NOT_MODIFIED},
                ),
            ]
            async for row in range_rows(
                self._messages,
                partition,
                keys.item_start_key(number, place),
                keys.after_item_key(number, place),
                first_page=PARTS_PER_ROW,
                select=["RowKey"],
            ):
                operations.append(("delete", {"PartitionKey": partition, "RowKey": row["RowKey"]}))
            old_blob = new_blob = None
            if len(operations) == 2:
                # No rows of its own: the item is in its turn's blob, or was never stored.
                spilled = await get_entity_or_none(self._messages, partition, spill.spill_row_key(number))
                if spilled is None:
                    return False
                old_blob = spilled[spill.BLOB_PROPERTY]
                change, new_blob = await self._without_item(spilled, number, place)
                if change is None:
                    return False
                operations.append(change)
            with storage_errors():
                try:
                    await self._messages.submit_transaction(operations)
                except TableTransactionError as e:
                    await self._unused(new_blob)
                    # A turn or another delete changed the head, or took the item, first: look again.
                    if getattr(e, "error_code", None) not in ("UpdateConditionNotSatisfied", "ResourceNotFound"):
                        raise
                else:
                    await self._unused(old_blob)
                    return True
        raise ConversationBusy("Too many changes at once on this conversation; try the delete again.")

    async def _without_item(self, spilled: TableEntity, number: int, place: int) -> tuple[Any, str | None]:
        """The change to a spilled turn's row that takes one item out: its rows without the item's,
        in a new blob (written here), or the row deleted when none are left; under the row's ETag.
        (None, None) when the blob holds no such item."""
        assert self._blobs is not None  # a spill row is only read with them (_load)
        partition = spilled["PartitionKey"]
        rows = spill.decode(partition, await _load(self._blobs, spilled[spill.BLOB_PROPERTY]))
        prefix = keys.item_start_key(number, place)
        kept = [row for row in rows if not row["RowKey"].startswith(prefix)]
        if len(kept) == len(rows):
            return None, None
        condition = {"etag": spilled.metadata["etag"], "match_condition": IF_NOT_MODIFIED}
        if not kept:
            return ("delete", {"PartitionKey": partition, "RowKey": spilled["RowKey"]}, condition), None
        name = TurnBlobs.new_name(partition, number)
        await self._blobs.put(name, spill.encode(kept))
        return ("update", spill.spill_row(partition, number, name), {"mode": UpdateMode.REPLACE, **condition}), name

    async def _index_row(self, conversation: Conversation, item_id: str) -> tuple[Head, TableEntity | None]:
        """The head, and the item's index row if it points above the floor."""
        await self._table.ready()
        head, index = await asyncio.gather(
            self.read_head(conversation),
            get_entity_or_none(self._messages, conversation.key, keys.item_index_row_key(item_id)),
        )
        if not head.exists:
            raise ConversationNotFound()
        if index is None or int(index["n"]) <= head.floor:
            return head, None
        return head, index

    async def _find_item(
        self, conversation: Conversation, item_id: str, *, deleted_too: bool = False
    ) -> tuple[Head, tuple[int, int] | None]:
        """The head, and where the item is (turn, place), if it is there; a deleted item's place
        too with `deleted_too` (a page may go on after an item deleted since it was shown)."""
        head, index = await self._index_row(conversation, item_id)
        if index is None or (index.get("gone") and not deleted_too):
            return head, None
        return head, (int(index["n"]), int(index["i"]))

    async def item_list(self, conversation: Conversation, after: str | None, limit: int, order: str) -> ItemPage:
        """A page of items, newest first (`desc`) or oldest first (`asc`), after the item `after`.

        Keys sort newest first, so `desc` is one query from the head (or from `after`). `asc`
        reads turns upward in spans, each one query from its newest turn down to the last span:
        what it reads follows the page, not the conversation.
        """
        await self._table.ready()
        partition = conversation.key
        where: tuple[int, int] | None = None
        if after is None and order == "desc":
            head, rows = await self._from_head(partition)
        else:
            if after is None:
                head = await self.read_head(conversation)
            else:
                head, where = await self._find_item(conversation, after, deleted_too=True)
                if where is None:
                    raise InvalidRequest("'after' names no item of this conversation.", code="invalid_after")
            rows = None
        if not head.exists:
            raise ConversationNotFound()
        found: list[StoredItem] = []
        if order == "desc":
            start = None
            if rows is None:
                assert where is not None
                start = keys.after_item_key(*where)
                rows = self._rows(partition, spill.turn_start_key(where[0]), _below(head.floor))
            async for read in _items(rows, head.floor, self._blobs, start=start):
                found.append(read.view)
                if len(found) > limit:
                    break
            return ItemPage(found[:limit], has_more=len(found) > limit)
        low = where[0] if where else head.first_turn
        stop = keys.item_start_key(*where) if where else _below(head.floor)
        span = limit + 1
        while low <= head.latest_turn and len(found) <= limit:
            high = min(head.latest_turn, low + span - 1)
            rows = self._rows(partition, keys.turn_prefix(high), stop)
            chunk = [read.view async for read in _items(rows, head.floor, self._blobs, end=stop)]
            chunk.reverse()
            found.extend(chunk)
            low, stop, span = high + 1, keys.turn_prefix(high), span * 2
        return ItemPage(found[:limit], has_more=len(found) > limit)

    # -- deleting ---------------------------------------------------------------------------

    async def raise_floor(self, conversation: Conversation) -> int:
        """Mark every turn so far deleted, and fail every turn in flight; the new floor.

        The floor moves to one past the newest turn number (so every delete raises it, even one
        repeated with no turn between), under the head's ETag. A turn that read the head before
        fails its transaction from this moment; rows at or below the floor are no longer read.
        """
        await self._table.ready()
        partition = conversation.key
        self._windows.forget(partition)

        def raised(head: Head) -> list[Any]:
            floor = head.latest_turn + 1
            return [replace_or_create(_head_entity(partition, floor, floor), head.etag)]

        head = await change_under_etag(
            self._messages,
            lambda: self.read_head(conversation),
            raised,
            attempts=MAX_FLOOR_ATTEMPTS,
            busy=ConversationBusy("Too many turns at once on this conversation; try the delete again."),
        )
        return head.latest_turn + 1

    async def delete_turns(self, conversation: Conversation, floor: int) -> None:
        """Remove the rows of every turn at or below `floor`, in transactions of 100. Idempotent.

        The head stays, holding the floor, so turn numbers are never reused; rows of turns stored
        since the floor was raised stay too.
        """
        await self._table.ready()
        partition = conversation.key
        with storage_errors():
            batch: list[tuple[str, dict[str, str]]] = []
            async for entity in self._messages.query_entities(
                "PartitionKey eq @pk",
                parameters={"pk": partition},
                select=["RowKey", "n", spill.BLOB_PROPERTY],
                results_per_page=1000,
            ):
                if _kept_by_delete(entity, floor):
                    continue
                blob = entity.get(spill.BLOB_PROPERTY)
                if blob is not None and self._blobs is not None:
                    # Before its row: a turn below the floor is never read, and its blob goes for good.
                    await self._blobs.delete(blob)
                batch.append(("delete", {"PartitionKey": partition, "RowKey": entity["RowKey"]}))
                if len(batch) == 100:
                    await self._submit_deletes(batch)
                    batch = []
            if batch:
                await self._submit_deletes(batch)

    async def _submit_deletes(self, batch: list[tuple[str, dict[str, str]]]) -> None:
        try:
            await self._messages.submit_transaction(batch)
        except TableTransactionError as e:
            if getattr(e, "error_code", None) != "ResourceNotFound":
                raise
            # A concurrent delete removed some rows first: delete the rest one by one.
            for _, entity in batch:
                await self._messages.delete_entity(entity["PartitionKey"], entity["RowKey"])


@dataclass
class _Window:
    etag: str
    budget: int
    cost: Callable[[Turn], int]
    turns: list[Turn]  # oldest first
    costs: list[int]


class _Windows:
    """The windows this worker read or wrote last, by conversation, under the head's ETag then.

    A window kept is only ever used for a read that finds that same ETag, which every write of the
    conversation (a turn, a delete, an item deleted, new metadata) changes: so it is what a read
    of the rows would return. A turn this worker stores moves its window on to the new ETag."""

    def __init__(self, max_tokens: int) -> None:
        self._max = max_tokens
        self._kept: OrderedDict[str, _Window] = OrderedDict()
        self._tokens = 0

    def get(self, key: str, etag: str | None, budget: int) -> _Window | None:
        kept = self._kept.get(key)
        if kept is None or etag is None or kept.etag != etag or kept.budget != budget:
            return None
        self._kept.move_to_end(key)
        return kept

    def put(
        self,
        key: str,
        etag: str | None,
        budget: int,
        cost: Callable[[Turn], int],
        turns: list[Turn],
        costs: list[int],
    ) -> None:
        self.forget(key)
        if etag is None or sum(costs) > self._max:
            return
        self._kept[key] = _Window(etag, budget, cost, turns, costs)
        self._tokens += sum(costs)
        while self._tokens > self._max and self._kept:
            _, dropped = self._kept.popitem(last=False)
            self._tokens -= sum(dropped.costs)

    def advance(self, key: str, etag: str | None, new_etag: str | None, turn: Turn) -> None:
        """The turn was stored after the head of `etag`: a window kept under it takes the turn, and
        as many of its oldest turns leave as the budget needs."""
        kept = self._kept.get(key)
        if kept is None or etag is None or kept.etag != etag or new_etag is None:
            self.forget(key)
            return
        turns, costs = [*kept.turns, turn], [*kept.costs, kept.cost(turn)]
        # As a read stops at the first turn, newest first, that does not fit.
        spent, start = 0, len(turns)
        while start and spent + costs[start - 1] <= kept.budget:
            start -= 1
            spent += costs[start]
        self.put(key, new_etag, kept.budget, kept.cost, turns[start:], costs[start:])

    def forget(self, key: str) -> None:
        dropped = self._kept.pop(key, None)
        if dropped is not None:
            self._tokens -= sum(dropped.costs)


def _as_read(number: int, turn: NewTurn) -> Turn:
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


def _continued(conversation: Conversation, turn: Turn) -> TurnRef | None:
    """The turn that `turn` continues: in a chain, the one its rows name; in a conversation, the one before."""
    if conversation.is_chain:
        previous = turn.continues
        if previous is None:
            return None
        return TurnRef(previous.conversation_id or conversation.id, previous.number)
    return TurnRef(conversation.id, turn.number - 1) if turn.number > 1 else None


def _fits(entities: list[dict[str, Any]]) -> bool:
    """Whether one transaction holds these rows."""
    try:
        check_transaction(entities)
    except LimitExceeded:
        return False
    return True


def _check_storable(entities: list[dict[str, Any]]) -> None:
    try:
        check_transaction(entities)
    except LimitExceeded as e:
        log.warning("turn too large to store: %s", e)
        raise AnswerTooLarge("The answer is too large to store with this message.") from None


def _item_entities(partition: str, number: int, index: int, item: Item, created_at: str) -> list[dict[str, Any]]:
    """The rows of one item: its head row (what it is, and the first parts of its text), then more
    rows of text parts for a text longer than one row holds."""
    head: dict[str, Any] = {"n": number, "k": KIND_CODES[item.kind], "id": item.id, "at": created_at}
    if isinstance(item, Message):
        head["role"] = item.role
        if item.refusal:
            head["refusal"] = True
        text = item.text
    elif isinstance(item, FunctionCall):
        head.update(call=item.call_id, name=item.name)
        text = item.arguments
    else:
        head["call"] = item.call_id
        text = item.output
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


def _head_entity(
    partition: str,
    latest_turn: int,
    floor: int,
    created_at: int | None = None,
    metadata: Mapping[str, str] | None = None,
    items: int = 0,
) -> dict[str, Any]:
    """The head row. A delete writes it with neither a creation time nor metadata: the
    conversation no longer exists, until its next write."""
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
    return entity


# The largest metadata OpenAI allows (16 keys of 64 characters, values of 512), for size checks.
MAX_METADATA = {f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)}


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


def _joined_parts(row: Mapping[str, Any]) -> str:
    return "".join(row[f"c{i:02d}"] for i in range(PARTS_PER_ROW) if f"c{i:02d}" in row)


def _head(first: TableEntity) -> Head:
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
        )
    return Head(latest_turn=keys.parse_item_row_key(first["RowKey"])[0])


def _below(floor: int) -> str:
    """The RowKey a read of the turns above `floor` ends before: rows of turn `floor` and older
    sort from its prefix on."""
    return keys.turn_prefix(floor) if floor else keys.TURN_END


def _kept_by_delete(entity: dict[str, Any], floor: int) -> bool:
    """Whether a delete through `floor` keeps this row: the head, and rows of later turns."""
    key = entity["RowKey"]
    if key == keys.HEAD_ROW_KEY:
        return True
    if key.startswith(keys.TURN_PREFIX):
        return keys.parse_item_row_key(key)[0] > floor
    # The rows that point at a turn (idempotency keys, item indexes, responses) go with it.
    return "n" in entity and int(entity["n"]) > floor


async def _prepend(first: TableEntity, rows: AsyncIterator[TableEntity]) -> AsyncIterator[TableEntity]:
    yield first
    async for row in rows:
        yield row


class _Read:
    """An item read back, with where it stands, and what its turn's rows say of the turn."""

    def __init__(self, turn: int, index: int, view: StoredItem, head: Mapping[str, Any]) -> None:
        self.turn = turn
        self.index = index
        self.view = view
        self.response_id: str | None = head.get("resp")
        self.continues: int | None = int(head["pt"]) if "pt" in head else None
        self.continues_in: str | None = head.get("pc")


async def _load(blobs: TurnBlobs | None, name: str) -> bytes:
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
        for row in spill.decode(entity["PartitionKey"], await _load(blobs, blob)) if blob else (entity,):
            if row["RowKey"] >= bound:
                return
            if start is None or row["RowKey"] >= start:
                yield row


async def _items(
    rows: AsyncIterator[TableEntity],
    floor: int,
    blobs: TurnBlobs | None,
    *,
    start: str | None = None,
    end: str | None = None,
) -> AsyncIterator[_Read]:
    """Items newest first, each put back together from its rows, from RowKey `start` down to the
    turn above `floor` (or to RowKey `end`)."""
    bound = _below(floor) if end is None else min(_below(floor), end)
    item_rows: list[Mapping[str, Any]] = []
    async for entity in _stored_rows(rows, bound, start, blobs):
        if item_rows and entity["RowKey"][:14] != item_rows[0]["RowKey"][:14]:
            yield _item(item_rows)
            item_rows = []
        item_rows.append(entity)
    if item_rows:
        yield _item(item_rows)


async def _turns(items: AsyncIterator[_Read]) -> AsyncIterator[Turn]:
    """Whole turns, newest first: a turn is yielded once an older item (or the end) is read."""
    group: list[_Read] = []
    async for read in items:
        if group and read.turn != group[0].turn:
            yield _turn(group)
            group = []
        group.append(read)
    if group:
        yield _turn(group)


def _turn(newest_first: list[_Read]) -> Turn:
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


def _item(rows: list[Mapping[str, Any]]) -> _Read:
    head = rows[0]
    number, index, _ = keys.parse_item_row_key(head["RowKey"])
    if len(rows) != int(head["rows"]):
        raise StorageUnavailable("A stored item is incomplete.")
    text = "".join(row[f"c{i:02d}"] for row in rows for i in range(PARTS_PER_ROW) if f"c{i:02d}" in row)
    kind = KINDS[head["k"]]
    item: Item
    if kind == "message":
        item = Message(head["id"], head["role"], text, refusal=bool(head.get("refusal")))
    elif kind == "function_call":
        item = FunctionCall(head["id"], head["call"], head["name"], text)
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
    return _Read(number, index, view, head)
