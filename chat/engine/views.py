"""Reads of conversations, their items and responses: what the doors show, with the owner's rules.

Every read names its conversation by owner and ID, so another owner's conversation is never found.
The owner's list is the one read that does more: an entry written ahead of its first turn or of a
delete, and not confirmed since, is shown only if its conversation's head says it exists; one
older than UNCONFIRMED_GRACE_SECONDS is put right as well.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from chat.engine.clock import unix_now
from chat.engine.errors import ChatError, ConversationNotFound, NotFound
from chat.engine.history import (
    Conversation,
    ConversationInfo,
    ConversationSummary,
    Head,
    ItemPage,
    Page,
    StoredItem,
    StoredResponse,
)
from chat.engine.ports import ConversationIndex, HistoryWindow, ItemReads
from chat.engine.runs import Run, Runs

log = logging.getLogger(__name__)

# How long an unconfirmed list entry may wait for the first turn or delete it was written ahead
# of before a reader of the list puts it right (a turn's write, retries included, takes far less).
UNCONFIRMED_GRACE_SECONDS = 120


class Views:
    def __init__(self, window: HistoryWindow, items: ItemReads, conversations: ConversationIndex, runs: Runs) -> None:
        self._window = window
        self._items = items
        self._conversations = conversations
        self._runs = runs

    async def conversations(self, owner: str, limit: int, cursor: str | None) -> Page[ConversationSummary]:
        """A page of the owner's list, without the entries whose conversation does not exist."""
        page = await self._conversations.list_conversations(owner, limit, cursor)
        unconfirmed = [summary for summary in page.items if summary.unconfirmed_since is not None]
        if not unconfirmed:
            return page
        conversations = [Conversation(owner, summary.id) for summary in unconfirmed]
        heads = await asyncio.gather(
            *(
                self._read_head(conversation, summary.head)
                for conversation, summary in zip(conversations, unconfirmed, strict=True)
            )
        )
        hidden: set[str] = set()
        repairs: list[Awaitable[None]] = []
        now = unix_now()
        for summary, conversation, head in zip(unconfirmed, conversations, heads, strict=True):
            listed = head.exists and head.floor == summary.floor
            if not listed:
                hidden.add(summary.id)
            if now - (summary.unconfirmed_since or 0) < UNCONFIRMED_GRACE_SECONDS:
                continue  # its turn or delete may be in flight still
            if listed:
                repairs.append(self._conversations.confirm(conversation, summary.floor))
            elif head.floor > summary.floor:
                repairs.append(self._conversations.forget(conversation, head.floor))
            elif not head.exists:
                repairs.append(self._conversations.discard(conversation, summary.floor))
        for outcome in await asyncio.gather(*repairs, return_exceptions=True):
            if isinstance(outcome, ChatError):
                log.warning("conversation list not repaired: %s", outcome.code)
            elif isinstance(outcome, BaseException):
                raise outcome
        return Page([summary for summary in page.items if summary.id not in hidden], page.next_cursor)

    async def _read_head(self, conversation: Conversation, head: Head | None) -> Head:
        """The head the list read with its entry, or read now."""
        return head if head is not None else await self._window.read_head(conversation)

    async def messages(self, owner: str, conversation_id: str, limit: int, cursor: str | None) -> Page[StoredItem]:
        """A page of a conversation's items, newest page first (the chat routes' history)."""
        return await self._items.items_page(Conversation(owner, conversation_id), limit, cursor)

    async def conversation(self, owner: str, conversation_id: str) -> ConversationInfo:
        head = await existing(self._window, Conversation(owner, conversation_id))
        return info(conversation_id, head)

    async def items(self, owner: str, conversation_id: str, *, after: str | None, limit: int, order: str) -> ItemPage:
        """A page of a conversation's items in either order, after an item (the OpenAI door's)."""
        return await self._items.item_list(Conversation(owner, conversation_id), after, limit, order)

    async def item(self, owner: str, conversation_id: str, item_id: str) -> StoredItem:
        found = await self._items.get_item(Conversation(owner, conversation_id), item_id)
        if found is None:
            raise item_not_found(item_id)
        return found

    async def response(self, owner: str, response_id: str) -> StoredResponse:
        found = await self._items.read_response(owner, response_id)
        if found is None:
            raise response_not_found(response_id)
        return found

    async def response_or_run(self, owner: str, response_id: str) -> StoredResponse | Run:
        """A stored response, or else one still being answered."""
        found = await self._items.read_response(owner, response_id)
        if found is not None:
            return found
        run = await self._runs.find(owner, response_id)
        if run is not None:
            return run
        # Stored between the two reads: the turn's transaction closes the in-progress row with it.
        found = await self._items.read_response(owner, response_id)
        if found is None:
            raise response_not_found(response_id)
        return found


async def existing(store: HistoryWindow, conversation: Conversation) -> Head:
    """The head of a conversation that exists; ConversationNotFound otherwise."""
    head = await store.read_head(conversation)
    if not head.exists:
        raise ConversationNotFound()
    return head


def info(conversation_id: str, head: Head) -> ConversationInfo:
    return ConversationInfo(conversation_id, head.created_at or 0, head.metadata)


def response_not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id[:100]}' not found.", code="response_not_found")


def item_not_found(item_id: str) -> NotFound:
    return NotFound(f"Item with id '{item_id[:100]}' not found.", code="item_not_found")
