"""Query strings of the OpenAI door: single values, and `include` as the SDKs repeat it."""

from __future__ import annotations

from collections.abc import Iterable

from chat.web.openai.errors import InvalidParameter
from chat.web.openai.requests.strict import shown_key
from chat.web.openai.requests.values import INCLUDABLE, MAX_INCLUDES

# The Functions host reads the function key from `code` when it is not in a header.
HOST_QUERY_PARAMS = ("code",)


def parse_include_query(query: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """The query of a single item's read (or of items added): only `include`."""
    return query_values(query, ())[1]


def no_query(query: Iterable[tuple[str, str]]) -> None:
    """The query of a route that takes no parameters (but the host's `code`): any is unknown."""
    parse_include_query([(key, value) for key, value in query if key != "include"])


def query_values(query: Iterable[tuple[str, str]], names: tuple[str, ...]) -> tuple[dict[str, str], tuple[str, ...]]:
    """Single values of `names`, and `include` (repeated, as `include` or `include[]`, as the SDKs send it)."""
    values: dict[str, str] = {}
    include: list[str] = []
    for key, value in query:
        if key in ("include", "include[]"):
            if value not in INCLUDABLE:
                raise InvalidParameter(
                    f"Invalid 'include': {value[:60]!r} is not supported here; use one of {', '.join(INCLUDABLE)}.",
                    param="include",
                )
            if len(include) == MAX_INCLUDES:
                raise InvalidParameter(f"Invalid 'include': at most {MAX_INCLUDES} values.", param="include")
            include.append(value)
        elif key in names:
            if key in values:
                raise InvalidParameter(f"Invalid '{key}': give it once.", param=key)
            values[key] = value
        elif key not in HOST_QUERY_PARAMS:
            name = shown_key(key)
            raise InvalidParameter(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
    return values, tuple(include)
