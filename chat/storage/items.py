"""Reading items and responses back from the messages table: a page of a conversation's items,
newest first (the AI Chat Protocol's messages) or in either order after an item (the
OpenAI-compatible door's), one item by its ID, an owner's item wherever it is, and a stored
response with its turn.
"""

from __future__ import annotations

import asyncio

from chat.engine.errors import ConversationNotFound, InvalidRequest
from chat.engine.history import Conversation, Head, ItemPage, Page, ResponseRecord, StoredItem, StoredResponse
from chat.engine.ids import item_partition
from chat.engine.items import Item, TurnRef
from chat.storage import codec, keys, spill
from chat.storage.message_table import MessagesTable
from chat.storage.tables import decode_cursor, encode_cursor, get_entity_or_none


class ItemReads(MessagesTable):
    """Items and responses as the doors read them."""

    async def items_page(self, conversation: Conversation, limit: int, cursor: str | None) -> Page[StoredItem]:
        """Up to `limit` items, newest first in storage, returned oldest first."""
        await self.table.ready()
        partition = conversation.key
        start = None
        if cursor:
            start = decode_cursor(cursor, keys.is_item_start_key)
            # A later page needs the floor too: rows a delete left behind are never shown.
            floor = (await self.read_head(conversation)).floor
            rows = self.rows(partition, spill.turn_start_key(keys.turn_of(start)), codec.below(floor))
        else:
            head, rows = await self.from_head(partition)
            floor = head.floor
        newest_first: list[StoredItem] = []
        next_cursor = None
        async for stored in codec.read_items(rows, floor, self.blobs, start=start):
            if len(newest_first) == limit:
                next_cursor = encode_cursor(keys.item_start_key(stored.turn, stored.index))
                break
            newest_first.append(stored.view)
        if not newest_first and cursor is None:
            raise ConversationNotFound()
        newest_first.reverse()
        return Page(items=newest_first, next_cursor=next_cursor)

    async def item_list(self, conversation: Conversation, after: str | None, limit: int, order: str) -> ItemPage:
        """A page of items, newest first (`desc`) or oldest first (`asc`), after the item `after`.

        Keys sort newest first, so `desc` is one query from the head (or from `after`). `asc`
        reads turns upward in spans, each one query from its newest turn down to the last span:
        what it reads follows the page, not the conversation.
        """
        await self.table.ready()
        partition = conversation.key
        where: tuple[int, int] | None = None
        if after is None and order == "desc":
            head, rows = await self.from_head(partition)
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
                rows = self.rows(partition, spill.turn_start_key(where[0]), codec.below(head.floor))
            async for read in codec.read_items(rows, head.floor, self.blobs, start=start):
                found.append(read.view)
                if len(found) > limit:
                    break
            return ItemPage(found[:limit], has_more=len(found) > limit)
        low = where[0] if where else head.first_turn
        stop = keys.item_start_key(*where) if where else codec.below(head.floor)
        span = limit + 1
        while low <= head.latest_turn and len(found) <= limit:
            high = min(head.latest_turn, low + span - 1)
            rows = self.rows(partition, keys.turn_prefix(high), stop)
            chunk = [read.view async for read in codec.read_items(rows, head.floor, self.blobs, end=stop)]
            chunk.reverse()
            found.extend(chunk)
            low, stop, span = high + 1, keys.turn_prefix(high), span * 2
        return ItemPage(found[:limit], has_more=len(found) > limit)

    async def get_item(self, conversation: Conversation, item_id: str) -> StoredItem | None:
        head, where = await self._find_item(conversation, item_id)
        if where is None:
            return None
        number, index = where
        rows = self.rows(conversation.key, spill.turn_start_key(number), keys.after_item_key(number, index))
        async for read in codec.read_items(rows, head.floor, self.blobs, start=keys.item_start_key(number, index)):
            return read.view
        return None

    async def _find_item(
        self, conversation: Conversation, item_id: str, *, deleted_too: bool = False
    ) -> tuple[Head, tuple[int, int] | None]:
        """The head, and where the item is (turn, place), if it is there; a deleted item's place
        too with `deleted_too` (a page may go on after an item deleted since it was shown)."""
        head, index = await self.index_row(conversation, item_id)
        if index is None or (index.get("gone") and not deleted_too):
            return head, None
        return head, (int(index["n"]), int(index["i"]))

    async def find_owned_item(self, owner: str, item_id: str) -> Item | None:
        """An item of this owner's, by its ID alone: in the conversation its ID names, or (an ID
        from before IDs named it) where the owner's index row says."""
        await self.table.ready()
        partition = item_partition(item_id)
        row = await get_entity_or_none(
            self.client,
            partition if partition is not None else keys.owner_partition(owner),
            keys.item_index_row_key(item_id),
        )
        if row is None or not row.get("conv"):
            return None
        conversation = Conversation(owner, row["conv"])
        if partition is not None and conversation.key != partition:
            return None  # another owner's
        turn, head = await asyncio.gather(self.find_turn(conversation, int(row["n"])), self.read_head(conversation))
        if turn is None or turn.number <= head.floor:
            return None  # never stored, or deleted since
        # Its place when stored (`i`); an item of the turn deleted since moves the ones after it.
        return next((item for item in turn.items if item.id == item_id), None)

    async def read_response(self, owner: str, response_id: str) -> StoredResponse | None:
        """A stored response of this owner and its turn, or None."""
        found = await self.response_row(owner, response_id)
        if found is None:
            return None
        conversation, row = found
        turn = await self.find_turn(conversation, int(row["n"]))
        if turn is None:
            return None
        return StoredResponse(ResponseRecord(response_id, codec.joined_parts(row)), conversation.id, turn)

    async def locate_response(self, owner: str, response_id: str) -> TurnRef | None:
        """Where a stored response of this owner is (its conversation or chain, and turn), or None:
        what a response that continues it needs, without reading the turn itself."""
        found = await self.response_row(owner, response_id)
        return TurnRef(found[0].id, int(found[1]["n"])) if found is not None else None
