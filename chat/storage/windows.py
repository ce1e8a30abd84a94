"""The windows a worker keeps: the history window it last read or wrote of each conversation,
under the ETag of the head it was read at, so that a read finding that same head needs no more
rows. docs/storage.md, "The windows a worker keeps", tells why a window kept is always current."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from chat.engine.items import Turn
from chat.engine.window import compacted
from chat.storage import keys

# At most this many tokens' worth (as the engine counts them) over every window kept, the least
# recently used first out.
WINDOW_CACHE_TOKENS = 8_000_000
# How many turns older than a window kept a read's first range reaches (older_than).
SLACK_TURNS = 8


@dataclass
class KeptWindow:
    etag: str
    budget: int
    cost: Callable[[Turn], int]
    turns: list[Turn]  # oldest first
    costs: list[int]
    # Whether the next read may ask for the head alone first: not when this worker last found the
    # window it kept changed by another (the conversation's turns go to other workers too).
    likely: bool = True

    def older_than(self) -> str | None:
        """Where a read of the window may expect to stop: the RowKey below which the turns are
        older than this window's oldest by SLACK_TURNS. A read goes on past it if the budget asks
        (the window of a conversation whose newer turns are smaller); None when the window is
        empty, or reaches back to turn 1."""
        if not self.turns:
            return None
        oldest = self.turns[0].number - SLACK_TURNS
        return keys.turn_prefix(oldest) if oldest > 1 else None


class WindowCache:
    """The windows this worker read or wrote last, by conversation, under the head's ETag then.

    A window kept is only ever used for a read that finds that same ETag, which every write of the
    conversation (a turn, a delete, an item deleted, new metadata) changes: so it is what a read
    of the rows would return. A turn this worker stores moves its window on to the new ETag."""

    def __init__(self, max_tokens: int = WINDOW_CACHE_TOKENS) -> None:
        self._max = max_tokens
        self._kept: OrderedDict[str, KeptWindow] = OrderedDict()
        self._tokens = 0

    def get(self, key: str, etag: str | None, budget: int) -> KeptWindow | None:
        kept = self._kept.get(key)
        if kept is None or etag is None or kept.etag != etag or kept.budget != budget:
            return None
        self._kept.move_to_end(key)
        kept.likely = True  # found current: the next read may ask for the head alone again
        return kept

    def kept(self, key: str, budget: int) -> KeptWindow | None:
        """The window kept for this budget, under whatever ETag: what a read may expect."""
        kept = self._kept.get(key)
        return kept if kept is not None and kept.budget == budget else None

    def put(
        self,
        key: str,
        etag: str | None,
        budget: int,
        cost: Callable[[Turn], int],
        turns: list[Turn],
        costs: list[int],
        *,
        likely: bool = True,
    ) -> None:
        self.forget(key)
        if etag is None or sum(costs) > self._max:
            return
        self._kept[key] = KeptWindow(etag, budget, cost, turns, costs, likely)
        self._tokens += sum(costs)
        while self._tokens > self._max and self._kept:
            _, dropped = self._kept.popitem(last=False)
            self._tokens -= sum(dropped.costs)

    def advance(self, key: str, etag: str | None, new_etag: str | None, turn: Turn) -> None:
        """The turn was stored after the head of `etag`: a window kept under it takes the turn, and
        as many of its oldest turns leave as the budget needs."""
        kept = self._kept.get(key)
        if kept is None or etag is None or kept.etag != etag or new_etag is None:
            self.forget(key)
            return
        turns, costs = [*kept.turns, turn], [*kept.costs, kept.cost(turn)]
        if compacted(turn):
            turns, costs = turns[-1:], costs[-1:]  # as a read stops at it
        # As a read stops at the first turn, newest first, that does not fit.
        spent, start = 0, len(turns)
        while start and spent + costs[start - 1] <= kept.budget:
            start -= 1
            spent += costs[start]
        self.put(key, new_etag, kept.budget, kept.cost, turns[start:], costs[start:], likely=kept.likely)

    def forget(self, key: str) -> None:
        dropped = self._kept.pop(key, None)
        if dropped is not None:
            self._tokens -= sum(dropped.costs)
