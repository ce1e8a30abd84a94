"""The daily token quota: a turn reserves its tokens before the model is asked, and settles after.

A turn reserves the estimate of its prompt and the answer cap, which the model gets as its output
limit. The reservation is added to the owner's count first and the total read after, so of two
concurrent turns at least one sees the other's reservation: the reservations of admitted turns
never add up to more than the quota. A turn that does not fit is refunded and refused
(RateLimited `quota_exceeded`), unless only other turns in flight hold the room: it then tries
again after a random wait, as turns that refused each other would otherwise all come back at
once. Once the model has answered, the reservation is settled to the tokens the model reports
(whether or not the turn is then stored); a model call that fails answered nothing and is
refunded. A settle or refund that fails leaves the reservation counted: the count then runs over,
never under.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from chat.engine.clock import seconds_to_midnight
from chat.engine.errors import ChatError, RateLimited
from chat.engine.ids import digest
from chat.engine.items import Usage
from chat.engine.ports import DayCount, TokenLedger

log = logging.getLogger(__name__)

# A turn that only turns in flight keep out of the quota tries this many times, waiting a random
# time of up to twice, four and eight times RESERVE_BACKOFF_SECONDS between tries.
RESERVE_ATTEMPTS = 4
RESERVE_BACKOFF_SECONDS = 0.1
# Then its Retry-After: about as long as a turn in flight takes to answer.
BUSY_RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class Reservation:
    """The tokens a turn holds in its owner's count for the day until it settles."""

    owner: str
    day: str
    prompt: int  # the estimate of the prompt sent to the model
    tokens: int  # the prompt's estimate and the answer cap


class QuotaLedger:
    """Reserve, hold and settle each turn's tokens in its owner's count for the day."""

    def __init__(
        self, counts: TokenLedger, *, daily_quota: int, answer_cap: int | None, estimate: Callable[[str], int]
    ) -> None:
        if daily_quota and answer_cap is None:
            raise ValueError("a daily token quota needs max_answer_tokens: every turn reserves it")
        self._counts = counts
        self._quota = daily_quota
        self._answer_cap = answer_cap
        self._estimate = estimate

    @property
    def enabled(self) -> bool:
        return self._quota > 0

    async def count(self, owner: str, day: str) -> DayCount:
        return await self._counts.read(owner, day)

    async def reserve(self, reservation: Reservation, count: DayCount) -> None:
        """Hold the turn's tokens in the owner's count, or refuse the turn.

        `count` is a read from before: if it leaves no room, nothing is written. A turn that only
        turns in flight keep out (their reservations will settle or be refunded) waits and tries
        again; one that settled usage keeps out is refused at once.
        """
        for attempt in range(RESERVE_ATTEMPTS):
            if attempt:
                await asyncio.sleep(random.uniform(0, RESERVE_BACKOFF_SECONDS * 2**attempt))
                count = await self._counts.read(reservation.owner, reservation.day)
            if count.settled + reservation.tokens > self._quota:
                raise self._exceeded(reservation, busy=False)
            if count.total + reservation.tokens <= self._quota and await self._hold(reservation, count):
                return
        raise self._exceeded(reservation, busy=True)

    async def settle(self, reservation: Reservation | None, used: int, *, seen: DayCount | None = None) -> None:
        """Replace the turn's reservation in the owner's count with the tokens it used."""
        if reservation is None:
            return
        change = used - reservation.tokens
        try:
            await self._counts.add(reservation.owner, reservation.day, change, held=-reservation.tokens, seen=seen)
        except ChatError as e:
            # Counted up front, a reservation that stays over-counts; only a turn that used more
            # than it reserved (an estimate too low) is under-counted by a failed settle.
            log.log(
                logging.ERROR if change > 0 else logging.WARNING,
                "daily token count not settled (%s): %+d tokens of owner %s not applied",
                e.code,
                change,
                digest("owner", reservation.owner)[:16],
            )

    def used(self, reservation: Reservation, usage: Usage | None, output_texts: list[str]) -> int:
        """What an answered turn is charged: the model's usage, or else its prompt and answer's estimates."""
        if usage is not None:
            return usage.total_tokens
        return reservation.prompt + sum(self._estimate(text) for text in output_texts)

    async def settle_cut(self, reservation: Reservation | None, answered: bool, text: list[str]) -> None:
        """Settle a stream that failed before the model finished: its usage is unknown, so it is
        charged its prompt and the text it sent. (A finished answer settled as it was stored.)"""
        if reservation is not None and not answered:
            await self.settle(reservation, reservation.prompt + self._estimate("".join(text)))

    async def _hold(self, reservation: Reservation, count: DayCount) -> bool:
        """Add the reservation, then read the total: whether it fits; if not, it is refunded."""
        counts = self._counts
        await counts.add(reservation.owner, reservation.day, reservation.tokens, held=reservation.tokens, seen=count)
        try:
            after = await counts.read(reservation.owner, reservation.day)
        except ChatError:
            await self.settle(reservation, 0)
            raise
        if after.total <= self._quota:
            return True
        await self.settle(reservation, 0, seen=after)
        return False

    def _exceeded(self, reservation: Reservation, *, busy: bool) -> RateLimited:
        if busy:
            message = (
                f"Your other turns in progress hold what is left of the daily quota of {self._quota:,} tokens; "
                "try again when they are done."
            )
            return RateLimited(message, retry_after=BUSY_RETRY_AFTER_SECONDS, code="quota_exceeded")
        if reservation.tokens > self._quota:
            message = (
                f"This turn needs up to {reservation.tokens:,} tokens (its message, the history sent with it and "
                f"an answer of up to {self._answer_cap or 0:,}), more than the daily quota of {self._quota:,}: "
                "send a shorter message or start a new conversation."
            )
        else:
            message = (
                f"The daily quota of {self._quota:,} tokens has no room left for this turn (up to "
                f"{reservation.tokens:,} with its answer); it renews at midnight UTC."
            )
        return RateLimited(message, retry_after=seconds_to_midnight(), code="quota_exceeded")
