"""The window: which stored items go to the model with a new turn.

The store reads whole turns newest first and stops once the token budget is spent, so the cost of a
read follows the window, not the conversation (`turn_cost` is what it counts). The prompt is then
made of the window's items and the new turn's inputs, with every function call paired with its
output: a call whose output is not in the prompt, or an output whose call is not, is dropped, both
halves together. That happens when trimming falls between a call and its output (they can be in two
turns: the model calls in one, the caller answers in the next), when a caller moved on without
answering a call, or when one half was deleted. A call stays pending in history while its caller
runs it: it reaches the model with the turn that brings its output; when other messages came
between the call and that output (the caller went on, then answered), the call goes just before its
output, so the prompt ends with what the turn brought (Chat Completions takes an output only right
after its call, and the model answers what is last).

A compaction (compaction.py) stands in for everything before it, so the prompt starts at the newest
one: the store's read stops at the newest turn that holds one, and the prompt leaves out what comes
before it. A compaction the model made while answering a turn (`context_management`) is among that
turn's outputs but summarises what came before the turn, so it goes first in its turn; one a
caller sends among its inputs stands where it was sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chat.engine.items import Compaction, FunctionCall, FunctionCallOutput, Item, Turn, item_text
from chat.engine.tokens import attachment_tokens


def turn_cost(turn: Turn, estimate: Callable[[str], int]) -> int:
    """The turn's estimate: its items' text, and their images and files (tokens.py)."""
    return sum(estimate(item_text(item)) for item in turn.items) + attachment_tokens(turn.items)


def compacted(turn: Turn) -> bool:
    """Whether the turn holds a compaction: a read of the window stops at it."""
    return any(isinstance(item, Compaction) for item in turn.items)


def in_prompt_order(turn: Turn) -> list[Item]:
    """A turn's items as the prompt has them: the compactions among its outputs first (they
    summarise what came before the turn), then its inputs, then its other outputs."""
    made = [item for item in turn.outputs if isinstance(item, Compaction)]
    return [*made, *turn.inputs, *(item for item in turn.outputs if not isinstance(item, Compaction))]


def since_compaction(items: Sequence[Item]) -> list[Item]:
    """The items from the newest compaction on: it stands in for those before it."""
    starts = [index for index, item in enumerate(items) if isinstance(item, Compaction)]
    return list(items[starts[-1] :] if starts else items)


def prompt_items(window: Sequence[Turn], new_inputs: Sequence[Item]) -> list[Item]:
    """The window's items, oldest first, then the new inputs, from the newest compaction on;
    function calls only with their outputs."""
    items = since_compaction([item for turn in window for item in in_prompt_order(turn)] + list(new_inputs))
    calls = {item.call_id for item in items if isinstance(item, FunctionCall)}
    outputs = {item.call_id for item in items if isinstance(item, FunctionCallOutput)}
    paired = calls & outputs
    return _beside_outputs(
        [item for item in items if not isinstance(item, FunctionCall | FunctionCallOutput) or item.call_id in paired]
    )


def _beside_outputs(items: list[Item]) -> list[Item]:
    """The items with each call that other items separate from its output moved to just before it."""
    called_at: dict[str, int] = {}
    last_other = -1  # the index of the newest item that is neither a call nor an output
    late: dict[str, Item] = {}
    for index, item in enumerate(items):
        if isinstance(item, FunctionCall):
            called_at[item.call_id] = index
        elif isinstance(item, FunctionCallOutput):
            at = called_at.get(item.call_id)
            if at is not None and at < last_other:
                late[item.call_id] = items[at]
        else:
            last_other = index
    if not late:
        return items
    moved: list[Item] = []
    for item in items:
        if isinstance(item, FunctionCall) and item.call_id in late:
            continue
        if isinstance(item, FunctionCallOutput) and item.call_id in late:
            moved.append(late.pop(item.call_id))
        moved.append(item)
    return moved


def shrunk(window: Sequence[Turn]) -> list[Turn]:
    """The newer half of the window: what is sent once after context_length_exceeded."""
    return list(window[len(window) // 2 + len(window) % 2 :])
