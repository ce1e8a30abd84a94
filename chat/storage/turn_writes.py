"""Storing turns in the messages table: a turn appended after the head it read, atomically, a
conversation created with its first items, new metadata, and the owner's index of items.

Each turn is inserted under the next number and updates the head under the ETag it read, in one
entity group transaction: a concurrent turn or a delete that changed the head first makes the
whole transaction fail (TurnConflict), and the engine reads the head again and renumbers, or, if a
delete raised its floor, gives up. A turn too big for one transaction keeps its rows in a blob
written first (spill.py); the transaction then names it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError
from azure.data.tables import TableTransactionError, UpdateMode

from chat.engine.clock import epoch_seconds
from chat.engine.errors import AnswerTooLarge, ConversationBusy, ConversationNotFound, TurnConflict, TurnOutcomeUnknown
from chat.engine.history import Conversation, Head, NewTurn
from chat.engine.ids import item_partition
from chat.engine.items import Item, Turn
from chat.storage import codec, keys, spill
from chat.storage.blobs import TurnBlobs
from chat.storage.limits import MAX_TRANSACTION_ENTITIES, LimitExceeded, check_transaction
from chat.storage.message_table import MAX_HEAD_ATTEMPTS, MessagesTable
from chat.storage.tables import change_under_etag, is_clash, replace_or_create, storage_errors

log = logging.getLogger(__name__)


class TurnWrites(MessagesTable):
    """What a turn writes, and what a write whose answer was lost reads back."""

    async def find_idempotent(
        self, conversation: Conversation, idempotency_key: str, floor: int = 0
    ) -> tuple[Turn, str] | None:
        """The turn an Idempotency-Key produced above `floor`, and its request's hash."""
        return await self.keyed_turn(conversation, await self.key_row(conversation, idempotency_key), floor)

    async def index_items(self, conversation: Conversation, number: int, items: Sequence[Item]) -> None:
        """Where each item is, in the owner's partition of this table (a row per item ID: the
        conversation, the turn and the place in it), so an item is found by its ID alone, for the
        items whose IDs do not name their conversation (minted before IDs did; the others have their
        index row in the turn's own transaction). Written beside the turn's transaction: a row may
        name a turn that was never stored, or one deleted since, and a reader checks the turn
        (find_owned_item)."""
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
            if item_partition(item.id) is None  # one whose ID names its conversation needs none
        ]
        if not rows:
            return
        await self.table.ready()
        await self._upsert(rows)

    async def append_turn(self, conversation: Conversation, head: Head, turn: NewTurn) -> int:
        """Store the user and assistant messages as the turn after `head`, atomically; its number.

        The transaction inserts the turn's rows and replaces the head under the ETag it was read
        with (creates it, if there was none). Raises TurnConflict when a concurrent turn or a
        delete changed the head first, or a concurrent request stored the idempotency key.
        """
        await self.table.ready()  # a new chain's first turn reads nothing before it
        number = head.latest_turn + 1
        created_at = head.created_at if head.created_at is not None else epoch_seconds(turn.created_at)
        updated = max(head.updated_at or "", turn.created_at)
        head_row = codec.head_entity(
            conversation.key, number, head.floor, created_at, head.metadata, head.item_count + len(turn.items), updated
        )
        entities, blob = await self._prepared(conversation, number, turn, head_row)
        operations: list[Any] = [_write(entity) for entity in entities]
        operations.append(replace_or_create(head_row, head.etag))
        with storage_errors():
            try:
                results = await self.client.submit_transaction(operations)
            except TableTransactionError as e:
                self.windows.forget(conversation.key)
                await self.forget_blob(blob)
                if is_clash(e):
                    raise TurnConflict() from None
                raise  # refused as a whole: nothing of it is stored
            except (AzureError, TimeoutError) as e:
                self.windows.forget(conversation.key)
                if isinstance(e, ClientAuthenticationError) or (
                    isinstance(e, HttpResponseError) and (e.status_code or 0) < 500
                ):
                    await self.forget_blob(blob)
                    raise
                # No answer (the connection dropped, whether before or after the request went:
                # the client cannot always tell), or a server error, which may come after the
                # write: the turn may be stored. The caller reads the conversation to learn which.
                log.warning("storage did not confirm a turn's transaction: %s", e)
                raise TurnOutcomeUnknown() from e
        # The head's new ETag: the window kept under the old one, with this turn, is the next read's.
        new_etag = (results[-1] or {}).get("etag") if results else None
        self.windows.advance(conversation.key, head.etag, new_etag, codec.as_read(number, turn))
        return number

    def check_storable(self, conversation: Conversation, turn: NewTurn) -> None:
        """Raise AnswerTooLarge, before anything is written, for a turn that cannot be stored: one
        no transaction holds, when no Blob Storage is configured, or one whose rows spilled to a
        blob still leave more than one transaction holds (too many items, or too large settings).

        A turn's size does not depend on its number (RowKeys have a fixed length).
        """
        entities = codec.turn_entities(conversation, 1, turn)
        head_row = codec.largest_head_entity(conversation.key, turn.created_at)
        if not _fits([*entities, head_row]):
            self._spilled(conversation, 1, turn, entities, head_row)

    async def _prepared(
        self, conversation: Conversation, number: int, turn: NewTurn, head_row: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The rows the turn's transaction creates beside the head, and the blob its rows went to
        when they do not fit one transaction (written here, with the turn's item index, before it)."""
        entities = codec.turn_entities(conversation, number, turn)
        if _fits([*entities, head_row]):
            return entities, None
        rows, index_rows, small = self._spilled(conversation, number, turn, entities, head_row)
        assert self.blobs is not None  # _spilled refuses the turn without them
        name = TurnBlobs.new_name(conversation.key, number)
        await self.blobs.put(name, spill.encode(rows))
        # Before the transaction: a row may name a turn that was never stored, and every reader
        # of it checks the item it finds there.
        await self._upsert(index_rows)
        return [*small, spill.spill_row(conversation.key, number, name)], name

    async def _upsert(self, rows: Sequence[dict[str, Any]]) -> None:
        """Write rows of one partition as they are, in as few transactions as hold them."""
        with storage_errors():
            for start in range(0, len(rows), MAX_TRANSACTION_ENTITIES):
                batch = rows[start : start + MAX_TRANSACTION_ENTITIES]
                await self.client.submit_transaction([("upsert", row, {"mode": UpdateMode.REPLACE}) for row in batch])

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
        if self.blobs is None:
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

    async def create_conversation(
        self, conversation: Conversation, created_at: int, metadata: Mapping[str, str], turn: NewTurn | None
    ) -> None:
        """Create the conversation (its ID is new), with its first items as turn 1, atomically."""
        await self.table.ready()
        items = len(turn.items) if turn is not None else 0
        head_row = codec.head_entity(conversation.key, 1 if turn is not None else 0, 0, created_at, metadata, items)
        entities, blob = await self._prepared(conversation, 1, turn, head_row) if turn is not None else ([], None)
        with storage_errors():
            try:
                await self.client.submit_transaction([("create", entity) for entity in [*entities, head_row]])
            except TableTransactionError as e:
                await self.forget_blob(blob)
                if is_clash(e):
                    raise TurnConflict() from None
                raise

    async def update_metadata(self, conversation: Conversation, metadata: Mapping[str, str]) -> Head:
        """Replace the conversation's metadata; the head as written. ConversationNotFound if it has none."""
        await self.table.ready()
        partition = conversation.key

        def change(head: Head) -> list[Any]:
            if not head.exists:
                raise ConversationNotFound()
            row = codec.head_entity(
                partition, head.latest_turn, head.floor, head.created_at, metadata, head.item_count, head.updated_at
            )
            return [replace_or_create(row, head.etag)]

        self.windows.forget(conversation.key)
        head = await change_under_etag(
            self.client,
            lambda: self.read_head(conversation),
            change,
            attempts=MAX_HEAD_ATTEMPTS,
            busy=ConversationBusy("Too many changes at once on this conversation; try again."),
        )
        return Head(head.latest_turn, head.floor, None, head.created_at, dict(metadata))


def _fits(entities: list[dict[str, Any]]) -> bool:
    """Whether one transaction holds these rows, and they keep no image or file over more than one
    row (those go to a blob, whole, with their turn: codec.spans_rows)."""
    if any(codec.spans_rows(entity) for entity in entities):
        return False
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


def _write(entity: dict[str, Any]) -> Any:
    """A row of a turn's transaction: created, but for the closed mark of a streamed response's
    in-progress row, which replaces that row whether or not it was written."""
    if entity["RowKey"].startswith(keys.RUN_PREFIX):
        return ("upsert", entity, {"mode": UpdateMode.REPLACE})
    return ("create", entity)
