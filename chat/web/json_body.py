"""JSON bodies, one reader for every front door: strict, and bounded in what they hold.

Strict: json.loads takes `NaN`, `Infinity` and `-Infinity`, which JSON (RFC 8259) does not have,
and keeps the last of a key named twice in an object, which JSON leaves undefined (another
reader may keep the first). Both are refused, so what a client meant is never guessed.

Bounded: json.loads builds an object of every value in a body, and three bytes, `[],`, become a
list of 56 bytes and more: what a body holds, not its size, bounds what parsing it costs. So a
body may hold at most MAX_JSON_VALUES strings (keys included), arrays and objects, and as many
numbers, counted before anything is built; `true`, `false` and `null` are shared objects and
cost nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.decoder import scanstring  # type: ignore[attr-defined]  # in the module, not in its stubs
from typing import Any

from chat.web.errors import BodyTooLarge

# Ten to each of the AI Chat Protocol's 10,000 messages, where a plain one takes five.
MAX_JSON_VALUES = 100_000


class NotJson(ValueError):
    """Text json.loads would read that is not JSON, or is ambiguous; its message says why, for a client."""


def loads(text: str) -> Any:
    """json.loads, but `NaN`, `Infinity` and a key named twice in one object are NotJson, a body
    of more than MAX_JSON_VALUES strings, arrays and objects is refused before any is built (413
    json_too_complex), and one of more than MAX_JSON_VALUES numbers at the one past the limit.
    ValueError (NotJson among them) and RecursionError as json.loads raises them."""
    strict: dict[str, Any] = {"parse_constant": _no_constant, "object_pairs_hook": _object}
    if len(text) <= MAX_JSON_VALUES:  # every value takes a character at least
        return json.loads(text, **strict)
    _require_few_values(text)
    numbers = 0

    def counted(convert: Callable[[str], Any]) -> Callable[[str], Any]:
        def parse(literal: str) -> Any:
            nonlocal numbers
            numbers += 1
            if numbers > MAX_JSON_VALUES:
                raise _too_complex("numbers")
            return convert(literal)

        return parse

    return json.loads(text, parse_int=counted(int), parse_float=counted(float), **strict)


def _no_constant(name: str) -> None:
    raise NotJson(f"{name} is not a JSON number.")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            shown = key if len(key) <= 64 else key[:63] + "…"
            raise NotJson(f"The key {json.dumps(shown)} appears twice in one object.")
        document[key] = value
    return document


def _require_few_values(text: str) -> None:
    count, find = text.count, text.find
    # Quotes and brackets anywhere, inside strings too, over-count the strings, arrays and objects:
    # a body under the limit by that count needs no closer look.
    if count('"') // 2 + count("[") + count("{") <= MAX_JSON_VALUES:
        return
    # Count exactly: the brackets between strings, and the strings, each skipped with json's own
    # scanner so that it ends where json.loads ends it. Each turn of the loop is one value more.
    values = position = 0
    while values <= MAX_JSON_VALUES:
        quote = find('"', position)
        end = len(text) if quote < 0 else quote
        values += count("[", position, end) + count("{", position, end)
        if quote < 0:
            break
        _, position = scanstring(text, quote + 1)  # ValueError for a malformed string, as json.loads
        values += 1
    if values > MAX_JSON_VALUES:
        raise _too_complex("strings, arrays and objects")


def _too_complex(what: str) -> BodyTooLarge:
    return BodyTooLarge(
        f"The body holds more than {MAX_JSON_VALUES:,} JSON {what}; "
        "the server keeps the history, so send only the new items.",
        code="json_too_complex",
    )
