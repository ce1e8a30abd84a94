"""The history a turn reads: its conversation's window (newest whole turns within the budget, and
the turn an Idempotency-Key already produced), or a chain of responses followed back.

Reading the window is one query over RowKeys that sort newest first, the head first, stopped as
soon as the budget is spent or a turn holding a compaction is read (it stands in for the turns
before it): its cost follows the window, not the conversation. When the head it
reads first is the one this worker last saw, the window kept then (windows.py) is the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from chat.engine.history import Conversation, Head, History
from chat.engine.items import Turn, TurnRef
from chat.engine.window import compacted
from chat.storage import codec, keys
from chat.storage.message_table import MessagesTable


class HistoryWindow(MessagesTable):
    """What a turn reads before it calls the model."""

    async def read_history(
        self,
        conversation: Conversation,
        token_budget: int,
        turn_cost: Callable[[Turn], int],
        idempotency_key: str | None = None,
    ) -> History:
        """The newest whole turns that fit the budget, the head they were read under, and the turn
        a retried request produced."""
        await self.table.ready()
        if idempotency_key is None:
            window, head = await self._window(conversation, token_budget, turn_cost)
            return History(turns=window, head=head)
        (window, head), key_row = await asyncio.gather(
            self._window(conversation, token_budget, turn_cost),
            self.key_row(conversation, idempotency_key),
        )
        found = await self.keyed_turn(conversation, key_row, head.floor)
        replay, replay_hash = found if found else (None, None)
        return History(turns=window, head=head, replay=replay, replay_request_hash=replay_hash)

    async def _window(
        self, conversation: Conversation, token_budget: int, turn_cost: Callable[[Turn], int]
    ) -> tuple[list[Turn], Head]:
        """The window: the same query always, but when the head it reads first is the one this
        worker last saw (its ETag changes with every write of the conversation), the window kept
        then is the answer, and the rest of the rows are not read."""
        # When the window kept is likely current (this worker's last read of it found it so, or
        # it has not read it since it was kept), the first page is the head alone.
        earlier = self.windows.kept(conversation.key, token_budget)
        head, found = await self.from_head(
            conversation.key,
            head_first=earlier is not None and earlier.likely,
            until=earlier.older_than() if earlier is not None else None,
        )
        kept = self.windows.get(conversation.key, head.etag, token_budget)
        if kept is not None:
            await found.aclose()  # type: ignore[attr-defined]  # an async generator
            return list(kept.turns), head
        window: list[Turn] = []
        spent = 0
        async for turn in codec.read_turns(codec.read_items(found, head.floor, self.blobs)):
            cost = turn_cost(turn)
            if spent + cost > token_budget:
                break
            spent += cost
            window.append(turn)
            if compacted(turn):
                break  # a compaction stands in for every turn before it
        window.reverse()
        self.windows.put(
            conversation.key,
            head.etag,
            token_budget,
            turn_cost,
            window,
            [turn_cost(t) for t in window],
            likely=earlier is None,  # not when the window kept was found changed
        )
        return window, head

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
        await self.table.ready()
        window: list[Turn] = []
        spent = 0
        ref: TurnRef | None = start
        while ref is not None:
            conversation = Conversation(owner, ref.conversation_id)
            wanted, ref = ref, None
            floor = 0  # a chain is never deleted
            if not conversation.is_chain:
                # A conversation a chain branched off may have been deleted since: its floor says.
                floor = (await self.head_of(conversation.key)).floor
            if wanted.number <= floor:
                break
            found = self.rows(conversation.key, keys.turn_prefix(wanted.number), keys.TURN_END)
            async for turn in codec.read_turns(codec.read_items(found, floor, self.blobs)):
                if turn.number != wanted.number:
                    break  # not there: the chain ends
                cost = turn_cost(turn)
                if spent + cost > token_budget:
                    window.reverse()
                    return window
                spent += cost
                window.append(turn)
                following = None if compacted(turn) else _continued(conversation, turn)
                if following is None:
                    break
                if following.conversation_id == conversation.id and following.number == turn.number - 1:
                    wanted = following  # the next rows of this query
                    continue
                ref = following  # another query
                break
        window.reverse()
        return window


def _continued(conversation: Conversation, turn: Turn) -> TurnRef | None:
    """The turn that `turn` continues: in a chain, the one its rows name; in a conversation, the one before."""
    if conversation.is_chain:
        previous = turn.continues
        if previous is None:
            return None
        return TurnRef(previous.conversation_id or conversation.id, previous.number)
    return TurnRef(conversation.id, turn.number - 1) if turn.number > 1 else None
