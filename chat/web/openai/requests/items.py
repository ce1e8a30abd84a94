"""A conversation's items: POST /v1/conversations/{id}/items, and the query of a list of items
(GET .../items, and GET /v1/responses/{id}/input_items, which reads it the same way)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import (
    Field,
)

from chat.engine.items import Item
from chat.web.openai.errors import InvalidParameter
from chat.web.openai.requests.inputs import ConversationItems, engine_items
from chat.web.openai.requests.query import parse_include_query, query_values
from chat.web.openai.requests.strict import Strict, validate_body
from chat.web.openai.requests.values import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, is_object_id


@dataclass(frozen=True)
class ItemsCreate:
    items: tuple[Item, ...]
    include: tuple[str, ...]


@dataclass(frozen=True)
class ListQuery:
    after: str | None
    limit: int
    order: Literal["asc", "desc"]
    include: tuple[str, ...]


class _ItemsCreateBody(Strict):
    items: Annotated[ConversationItems, Field(min_length=1)]


# The body's model, whose JSON Schema /api/openapi.json gives.
ItemsCreateBody = _ItemsCreateBody


def parse_items_create(
    body: bytes, query: Iterable[tuple[str, str]] = (), *, refuse_instructions: bool = False
) -> ItemsCreate:
    """POST /v1/conversations/{id}/items: 1 to 20 items; `include` comes in the query string (read
    first, as every route of the door reads its query before its body)."""
    include = parse_include_query(query)
    parsed = validate_body(_ItemsCreateBody, body)
    items = engine_items(parsed.items, "items", refuse_instructions=refuse_instructions)
    return ItemsCreate(items, include)


def parse_list_query(query: Iterable[tuple[str, str]]) -> ListQuery:
    """The query of an item list: `after` (an item ID), `limit` 1 to 100 (20), `order` asc or desc (desc)."""
    values, include = query_values(query, ("after", "limit", "order"))
    after = values.get("after")
    if after is not None and not is_object_id(after):
        raise InvalidParameter("Invalid 'after': expected an item ID.", param="after")
    limit = values.get("limit")
    if limit is not None and not (re.fullmatch(r"[0-9]{1,3}", limit) and 1 <= int(limit) <= MAX_PAGE_SIZE):
        raise InvalidParameter(f"Invalid 'limit': expected a whole number from 1 to {MAX_PAGE_SIZE}.", param="limit")
    order = values.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidParameter("Invalid 'order': expected 'asc' or 'desc'.", param="order")
    return ListQuery(after, int(limit) if limit else DEFAULT_PAGE_SIZE, order, include)  # type: ignore[arg-type]
