"""A turn's write: its items under the next free number, the owner's list kept up beside it, and
its reservation settled.

The write is conditional on the head the turn read: a turn that loses the race to another turn is
renumbered and written again; one that loses to a delete is not stored (ConversationNotFound). A
write whose answer was lost is read back before it is tried again, so a turn is stored once.
"""

from __future__ import annotations

import asyncio
import logging

from chat.engine.errors import (
    ChatError,
    ConversationBusy,
    ConversationNotFound,
    IdempotencyKeyReused,
    StorageUnavailable,
    TurnConflict,
    TurnOutcomeUnknown,
)
from chat.engine.history import Conversation, Head, History, NewTurn
from chat.engine.ids import item_partition
from chat.engine.items import Item, Message, Turn, item_text
from chat.engine.ports import ConversationIndex, HistoryWindow, TurnWrites
from chat.engine.quota import QuotaLedger, Reservation

log = logging.getLogger(__name__)

MAX_COMMIT_ATTEMPTS = 64
MAX_UNANSWERED_WRITES = 2  # a turn's writes whose answer was lost, before the turn fails
KEY_REUSED = "This Idempotency-Key was already used for a different message."
DELETED = "The conversation was deleted while this turn was in flight; the turn was not stored."


class TurnWriter:
    """Store turns, keep the owner's list up, and settle what the model's answer cost."""

    def __init__(
        self,
        writes: TurnWrites,
        window: HistoryWindow,
        conversations: ConversationIndex,
        ledger: QuotaLedger,
        *,
        log_content: bool,
    ) -> None:
        self._writes = writes
        self._window = window
        self._conversations = conversations
        self._ledger = ledger
        self._log_content = log_content

    async def store_turn(
        self,
        conversation: Conversation,
        history: History,
        turn: NewTurn,
        reservation: Reservation | None,
        *,
        store: bool,
    ) -> Turn | None:
        """Commit the turn (unless it is not to be stored) and, beside it, settle its reservation:
        the model's tokens are spent whether or not the turn is then stored."""
        commit = self.commit(conversation, history, turn) if store else _nothing()
        if reservation is None:
            return await commit
        used = self._ledger.used(reservation, turn.usage, [item_text(item) for item in turn.outputs])
        settling = asyncio.ensure_future(self._ledger.settle(reservation, used))
        try:
            return await commit
        finally:
            await settling

    async def commit(self, conversation: Conversation, history: History, turn: NewTurn) -> Turn | None:
        """Store the turn under the next free number, and keep the owner's list up.

        Returns the stored turn of an earlier request with the same Idempotency-Key, if that one
        won the race (this turn is then not stored). Raises ConversationNotFound if the
        conversation was deleted since its history was read.
        """
        # Refuse an oversized turn before anything is written.
        self._writes.check_storable(conversation, turn)
        head = history.head
        planned = head.latest_turn + 1
        opening = history.turns[0] if history.turns else None
        first_message = title_text(opening.inputs if opening and opening.number == head.first_turn else turn.inputs)
        listed = not conversation.is_chain
        count = head.item_count + len(turn.items)
        if listed and planned == head.first_turn:
            # A new conversation is listed before its first turn is stored, marked unconfirmed, so
            # a conversation that exists is always listed: if this write fails, nothing is stored.
            await self._conversations.record_activity(
                conversation,
                floor=head.floor,
                first_message=first_message,
                at=turn.created_at,
                message_count=count,
                ahead=True,
            )
        # Beside the turn's transaction: the list entry of a conversation that is already listed.
        # The list entry carries the head's floor, so a turn that loses to a delete cannot list it.
        beside = None
        if listed and planned > head.first_turn:
            beside = asyncio.ensure_future(
                self.record_activity(conversation, head, first_message, turn.created_at, count)
            )
        # A later request's item_reference finds a response's item by its ID, which names this
        # conversation (ids.new_item_id); an item whose ID does not is indexed for its owner too.
        indexed = (
            asyncio.ensure_future(self._index_items(conversation, planned, turn))
            if turn.response is not None and any(item_partition(item.id) is None for item in turn.items)
            else None
        )
        try:
            number, replay, stored_after = await self._insert(conversation, head, turn)
        finally:
            beside_done = await beside if beside is not None else True
            if indexed is not None:
                await indexed
        if replay is None and indexed is not None and number != planned:
            await self._index_items(conversation, number, turn)
        if replay is None:
            if listed and (number != planned or planned == head.first_turn or not beside_done):
                # The turn that took the first number names the conversation (and confirms its
                # entry), even if a racing first turn listed it before; an update that failed
                # beside the transaction is tried once more.
                updated = await self.record_activity(
                    conversation,
                    head,
                    first_message,
                    turn.created_at,
                    stored_after.item_count + len(turn.items),
                    retitle=number == head.first_turn,
                )
                if not updated and number != head.first_turn:
                    log.error("conversation list not updated for turn %d of %s", number, conversation.key[:16])
            self._log_turn(conversation, number, turn)
        return replay

    async def record_activity(
        self, conversation: Conversation, head: Head, first_message: str, at: str, count: int, *, retitle: bool = False
    ) -> bool:
        """List the conversation with `count` items, at its turn of `at`; whether that was written.

        A stored turn is not failed for its list entry: the entry exists already (a first turn
        wrote it ahead, unconfirmed, which readers of the list check and put right)."""
        try:
            await self._conversations.record_activity(
                conversation,
                floor=head.floor,
                first_message=first_message,
                at=at,
                message_count=count,
                retitle=retitle,
            )
        except ChatError as e:
            log.warning("conversation list not updated: %s", e.code)
            return False
        return True

    async def _insert(self, conversation: Conversation, head: Head, turn: NewTurn) -> tuple[int, Turn | None, Head]:
        """Append the turn after the newest: its number, the stored turn of a request with its
        Idempotency-Key that won instead, and the head it was stored after.

        A write whose answer was lost (TurnOutcomeUnknown), or one the storage client sent again
        after such a loss and which then clashed with itself, may have stored the turn: the turn
        it tried to take is read back, and if it holds this turn's items (their IDs are this
        request's own), that is the answer. Otherwise the head is read again and the write
        retried once, still conditional on the head, so a write that lands late makes the retry
        clash and is found by the next read-back; a second lost answer not followed by the turn
        fails it (StorageUnavailable), with nothing stored.
        """
        floor = head.floor
        unanswered = 0
        for _ in range(MAX_COMMIT_ATTEMPTS):
            try:
                return await self._writes.append_turn(conversation, head, turn), None, head
            except (TurnConflict, TurnOutcomeUnknown) as e:
                if isinstance(e, TurnOutcomeUnknown):
                    unanswered += 1
                tried, tried_after = head.latest_turn + 1, head
                found = None
                if turn.idempotency_key is None:
                    head = await self._window.read_head(conversation)
                else:
                    head, found = await asyncio.gather(
                        self._window.read_head(conversation),
                        self._writes.find_idempotent(conversation, turn.idempotency_key, floor),
                    )
                if head.latest_turn >= tried and await self._is_stored(conversation, tried, turn):
                    return tried, None, tried_after
                if unanswered == MAX_UNANSWERED_WRITES:
                    raise StorageUnavailable(
                        "Storage did not answer the write, and the turn is not stored; try again."
                    ) from None
                if head.floor != floor:
                    # Deleted since this turn read it: the delete wins, and nothing of the turn is kept.
                    raise ConversationNotFound(DELETED) from None
                if found is not None:
                    stored, stored_hash = found
                    if stored_hash != turn.request_hash:
                        raise IdempotencyKeyReused(KEY_REUSED) from None
                    return stored.number, stored, head
        raise ConversationBusy("Too many turns at once on this conversation; try again.")

    async def _is_stored(self, conversation: Conversation, number: int, turn: NewTurn) -> bool:
        """Whether turn `number` is this one: the same items, by their IDs."""
        stored = await self._writes.find_turn(conversation, number)
        return stored is not None and [item.id for item in stored.items] == [item.id for item in turn.items]

    async def _index_items(self, conversation: Conversation, number: int, turn: NewTurn) -> None:
        try:
            await self._writes.index_items(conversation, number, turn.items)
        except ChatError as e:
            # The turn is what matters: a later reference to one of its items is a 404 naming it.
            log.warning("items of turn %d not indexed for their owner: %s", number, e.code)

    def _log_turn(self, conversation: Conversation, number: int, turn: NewTurn) -> None:
        if self._log_content:
            log.info(
                "turn %d of %s: input %r, output %r",
                number,
                conversation.key[:16],
                [item_text(item) for item in turn.inputs],
                [item_text(item) for item in turn.outputs],
            )
        else:
            log.info("turn %d of %s stored", number, conversation.key[:16])


def title_text(items: tuple[Item, ...]) -> str:
    """What names a conversation in its owner's list: the text of its first messages."""
    return " ".join(item.text for item in items if isinstance(item, Message) and item.text)


async def _nothing() -> None:
    return None
