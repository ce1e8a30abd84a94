"""Writes of the OpenAI door that ask no model: a new conversation (with its first items), its
metadata, and items added by hand (a turn of inputs only)."""

from __future__ import annotations

from collections.abc import Mapping

from chat.engine.clock import epoch_seconds, utc_now
from chat.engine.commit import TurnWriter, title_text
from chat.engine.history import Conversation, ConversationInfo, Head, History, NewTurn
from chat.engine.ids import new_openai_conversation_id
from chat.engine.items import Item, all_stored_in
from chat.engine.placing import Placement
from chat.engine.ports import ConversationIndex, HistoryWindow, TurnWrites
from chat.engine.views import existing, info


class ConversationWrites:
    def __init__(
        self,
        writes: TurnWrites,
        window: HistoryWindow,
        conversations: ConversationIndex,
        *,
        placement: Placement,
        writer: TurnWriter,
    ) -> None:
        self._writes = writes
        self._window = window
        self._conversations = conversations
        self._placement = placement
        self._writer = writer

    async def create(self, owner: str, items: tuple[Item, ...], metadata: Mapping[str, str]) -> ConversationInfo:
        """A new conversation, with its first items (a turn of inputs only) stored with it."""
        self._placement.check_inputs(items)
        conversation = Conversation(owner, new_openai_conversation_id())
        items = all_stored_in(items, conversation.key)
        created_at = utc_now()
        turn = (
            NewTurn(inputs=items, outputs=(), finish_reason=None, usage=None, created_at=created_at) if items else None
        )
        if turn is not None:
            self._placement.check_input_fits(conversation, turn)
        seconds = epoch_seconds(created_at)
        if turn is not None:
            await self._conversations.record_activity(
                conversation,
                floor=0,
                first_message=title_text(items),
                at=created_at,
                message_count=len(items),
                ahead=True,
            )
        await self._writes.create_conversation(conversation, seconds, metadata, turn)
        if turn is not None:
            await self._writer.record_activity(
                conversation, Head(), title_text(items), created_at, len(items), retitle=True
            )
        return ConversationInfo(conversation.id, seconds, dict(metadata))

    async def update_metadata(self, owner: str, conversation_id: str, metadata: Mapping[str, str]) -> ConversationInfo:
        head = await self._writes.update_metadata(Conversation(owner, conversation_id), metadata)
        return info(conversation_id, head)

    async def add_items(self, owner: str, conversation_id: str, items: tuple[Item, ...]) -> tuple[Item, ...]:
        """Append items to a conversation as a turn of inputs only: the model is not asked."""
        self._placement.check_inputs(items)
        conversation = Conversation(owner, conversation_id)
        items = all_stored_in(items, conversation.key)
        head = await existing(self._window, conversation)
        turn = NewTurn(inputs=items, outputs=(), finish_reason=None, usage=None)
        self._placement.check_input_fits(conversation, turn)
        await self._writer.commit(conversation, History([], head), turn)
        return items
