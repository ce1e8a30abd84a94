"""The window: which stored items go to the model with a new turn.

The store reads whole turns newest first and stops once the token budget is spent, so the cost of a
read follows the window, not the conversation (`turn_cost` is what it counts). The prompt is then
made of the window's items and the new turn's inputs, with every function call paired with its
output: a call whose output is not in the prompt, or an output whose call is not, is dropped, both
halves together. That happens when trimming falls between a call and its output (they can be in two
turns: the model calls in one, the caller answers in the next), when a caller moved on without
answering a call, or when one half was deleted. A call stays pending in history while its caller
runs it: it reaches the model with the turn that brings its output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chat.engine.items import FunctionCall, FunctionCallOutput, Item, Turn, item_text
from chat.engine.tokens import attachment_tokens


def turn_cost(turn: Turn, estimate: Callable[[str], int]) -> int:
    """The turn's estimate: its items' text, and their images and files (tokens.py)."""
    return sum(estimate(item_text(item)) for item in turn.items) + attachment_tokens(turn.items)


def prompt_items(window: Sequence[Turn], new_inputs: Sequence[Item]) -> list[Item]:
    """The window's items, oldest first, then the new inputs; function calls only with their outputs."""
    items = [item for turn in window for item in turn.items]
    items.extend(new_inputs)
    calls = {item.call_id for item in items if isinstance(item, FunctionCall)}
    outputs = {item.call_id for item in items if isinstance(item, FunctionCallOutput)}
    paired = calls & outputs
    return [item for item in items if not isinstance(item, FunctionCall | FunctionCallOutput) or item.call_id in paired]


def shrunk(window: Sequence[Turn]) -> list[Turn]:
    """The newer half of the window: what is sent once after context_length_exceeded."""
    return list(window[len(window) // 2 + len(window) % 2 :])
