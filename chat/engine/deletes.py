"""Deletes: a conversation (and all its turns), one item, one response.

A delete takes the background jobs of what it deletes with it (their rows, the request body and
the events they stored): a response's own, or every one placed in the conversation. A run still
going finds its row gone at its next write and stops, storing nothing.

A conversation's delete wins over every turn in flight. The floor goes up first: from then on no
turn that read the conversation before can be stored, and none of its rows is read. Then it is
unlisted, then its rows are removed; a delete cut short leaves rows nothing reads nor lists (its
list entry is marked before the floor goes up), and a retry finishes it.
"""

from __future__ import annotations

import logging

from chat.engine.errors import ChatError
from chat.engine.history import Conversation, ConversationInfo, is_chain
from chat.engine.ports import ConversationIndex, HistoryWindow, JobDeletes, TurnDeletes
from chat.engine.views import existing, info, item_not_found, response_not_found

log = logging.getLogger(__name__)


class Deletes:
    def __init__(
        self,
        deletes: TurnDeletes,
        window: HistoryWindow,
        conversations: ConversationIndex,
        jobs: JobDeletes | None = None,
    ) -> None:
        self._deletes = deletes
        self._window = window
        self._conversations = conversations
        self._jobs = jobs

    async def conversation(self, owner: str, conversation_id: str) -> None:
        """Delete the conversation, whether or not it exists (the chat routes' DELETE is idempotent)."""
        conversation = Conversation(owner, conversation_id)
        if not is_chain(conversation_id):
            # Should the delete be cut short before it unlists the conversation, readers of the
            # list see the mark, find the raised floor and do not show it.
            await self._conversations.mark_unconfirmed(conversation)
        floor = await self._deletes.raise_floor(conversation)
        await self._conversations.forget(conversation, floor)
        if self._jobs is not None:
            await self._jobs.delete_placed_in(conversation)
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
        """Forget a stored response, and its background job if it had one (queued, running or ended)."""
        job_deleted = False
        if self._jobs is not None:
            found = await self._jobs.read(response_id)
            if found is not None and found[0].owner == owner:
                await self._jobs.delete(response_id)
                job_deleted = True
        if not await self._deletes.delete_response(owner, response_id) and not job_deleted:
            raise response_not_found(response_id)
