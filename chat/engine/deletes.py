"""Deletes: a conversation (and all its turns), one item, one response.

A conversation's delete wins over every turn in flight. The floor goes up first: from then on no
turn that read the conversation before can be stored, and none of its rows is read. Then it is
unlisted, then its rows are removed; a delete cut short leaves rows nothing reads nor lists (its
list entry is marked before the floor goes up), and a retry finishes it.
"""

from __future__ import annotations

import logging

from chat.engine.errors import ChatError
from chat.engine.history import Conversation, ConversationInfo, is_chain
from chat.engine.ports import ConversationIndex, HistoryWindow, TurnDeletes
from chat.engine.views import existing, info, item_not_found, response_not_found

log = logging.getLogger(__name__)


class Deletes:
    def __init__(self, deletes: TurnDeletes, window: HistoryWindow, conversations: ConversationIndex) -> None:
        self._deletes = deletes
        self._window = window
        self._conversations = conversations

    async def conversation(self, owner: str, conversation_id: str) -> None:
        """Delete the conversation, whether or not it exists (the chat routes' DELETE is idempotent)."""
        conversation = Conversation(owner, conversation_id)
        if not is_chain(conversation_id):
            # Should the delete be cut short before it unlists the conversation, readers of the
            # list see the mark, find the raised floor and do not show it.
            await self._conversations.mark_unconfirmed(conversation)
        floor = await self._deletes.raise_floor(conversation)
        await self._conversations.forget(conversation, floor)
        await self._deletes.delete_turns(conversation, floor)

    async def existing_conversation(self, owner: str, conversation_id: str) -> None:
        """Delete a conversation that exists (ConversationNotFound otherwise), as conversation() does."""
        await existing(self._window, Conversation(owner, conversation_id))
        await self.conversation(owner, conversation_id)

    async def item(self, owner: str, conversation_id: str, item_id: str) -> ConversationInfo:
        """Delete one item, and recount the list entry from the head; the conversation as it is after."""
        conversation = Conversation(owner, conversation_id)
        if not await self._deletes.delete_item(conversation, item_id):
            raise item_not_found(item_id)
        head = await existing(self._window, conversation)
        try:
            await self._conversations.recount(conversation, floor=head.floor, message_count=head.item_count)
        except ChatError as e:
            # The item is gone either way; the list entry heals on the next turn.
            log.warning("conversation list not recounted: %s", e.code)
        return info(conversation_id, head)

    async def response(self, owner: str, response_id: str) -> None:
        if not await self._deletes.delete_response(owner, response_id):
            raise response_not_found(response_id)
