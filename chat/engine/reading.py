"""Reading a turn's window: a conversation's newest turns in the token budget, or the turns a chain's
response continues; the turn an Idempotency-Key already stored; and, with a daily quota, the turn's
tokens reserved (the owner's count for the day is read beside the window)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from chat.engine.asking import Asking
from chat.engine.clock import utc_day
from chat.engine.commit import KEY_REUSED
from chat.engine.errors import ConversationNotFound, IdempotencyKeyReused, InvalidRequest
from chat.engine.history import Head, History, request_hash
from chat.engine.items import FunctionCall, FunctionCallOutput, Item, Turn
from chat.engine.ports import DayCount, HistoryWindow, TurnWrites
from chat.engine.quota import QuotaLedger, Reservation
from chat.engine.turns import Place, TurnInput
from chat.engine.window import turn_cost

UNLIMITED = 2**62  # the token budget of a request that disables truncation


class Reading:
    def __init__(
        self,
        window: HistoryWindow,
        writes: TurnWrites,
        ledger: QuotaLedger,
        asking: Asking,
        *,
        history_token_budget: int,
        estimate: Callable[[str], int],
    ) -> None:
        self._window = window
        self._writes = writes
        self._ledger = ledger
        self._asking = asking
        self._budget = history_token_budget
        self._estimate = estimate

    async def prepare(self, place: Place, request: TurnInput) -> tuple[History, Reservation | None]:
        """The window the turn is answered from, and its reservation (None without a quota, or for
        a turn an Idempotency-Key replays: `history.replay`)."""
        owner = place.conversation.owner
        reading = self._read(place, request)
        day = utc_day()
        count: DayCount | None
        if self._ledger.enabled:
            history, count = await asyncio.gather(reading, self._ledger.count(owner, day))
        else:
            history, count = await reading, None
        if history.replay is not None:
            if history.replay_request_hash != request_hash(request.inputs):
                raise IdempotencyKeyReused(KEY_REUSED)
            if request.response is not None and history.replay.response_id is None:
                raise IdempotencyKeyReused("This Idempotency-Key was already used for a chat turn, not a response.")
            return history, None
        if request.must_exist and not history.head.exists:
            raise ConversationNotFound()
        _check_outputs_answer_calls(history, request.inputs)
        answer_cap = self._asking.output_cap(request)
        if count is None or answer_cap is None:
            return history, None
        prompt = self._asking.prompt_tokens(history, request)
        reservation = Reservation(owner, day, prompt, prompt + answer_cap)
        await self._ledger.reserve(reservation, count)
        return history, reservation

    async def window(self, place: Place, request: TurnInput) -> History:
        """The window alone, as a turn would read it: nothing reserved, nothing checked."""
        return await self._read(place, request)

    async def _read(self, place: Place, request: TurnInput) -> History:
        budget = self._budget if request.truncate else UNLIMITED
        conversation, key = place.conversation, request.idempotency_key
        if place.continues is None:
            if conversation.is_chain and key is None:
                return History([], Head())  # a new chain: nothing to read
            return await self._window.read_history(conversation, budget, self._turn_cost, key)
        chain = self._window.read_chain(conversation.owner, place.continues, budget, self._turn_cost)
        if key is None:
            turns, head = await asyncio.gather(chain, self._window.read_head(conversation))
            return History(turns, head)
        turns, head, found = await asyncio.gather(
            chain, self._window.read_head(conversation), self._writes.find_idempotent(conversation, key)
        )
        replay, replay_hash = found if found else (None, None)
        return History(turns, head, replay, replay_hash)

    def _turn_cost(self, turn: Turn) -> int:
        return turn_cost(turn, self._estimate)


def _check_outputs_answer_calls(history: History, inputs: tuple[Item, ...]) -> None:
    """Each function call output a request sends answers a call the model can see: one of the
    window's, or one sent beside it. Otherwise the model would never be shown it."""
    calls = {item.call_id for turn in history.turns for item in turn.items if isinstance(item, FunctionCall)}
    calls.update(item.call_id for item in inputs if isinstance(item, FunctionCall))
    for item in inputs:
        if isinstance(item, FunctionCallOutput) and item.call_id not in calls:
            raise InvalidRequest(
                f"No function call with call_id {item.call_id[:100]!r} is in the history this response continues.",
                code="function_call_not_found",
            )
