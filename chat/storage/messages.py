"""Conversation history in Azure Table Storage.

One partition per (owner, conversation): every row of a turn is written by one entity group
transaction, so a turn is stored whole or not at all. Turns are inserted under their sequence
number; an insert that clashes with a concurrent turn fails as a whole (TurnConflict), and the
service renumbers and retries. Reading the window is one query over RowKeys that sort newest
first, stopped as soon as the token budget is spent: its cost follows the window, not the
conversation. The key layout is in keys.py, the size limits in table_limits.py, and the whole
protocol in docs/storage.md. The owner's list of conversations is in conversations.py, the daily
token counts in quota.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableTransactionError

from chat.engine.errors import AnswerTooLarge, ConversationNotFound, StorageUnavailable, TurnConflict
from chat.storage import keys
from chat.storage.limits import PARTS_PER_ROW, LimitExceeded, check_transaction, split_text
from chat.storage.tables import Page, Table, decode_cursor, encode_cursor, storage_errors
from chat.usage import Usage

log = logging.getLogger(__name__)

QUERY_PAGE_ROWS = 32  # the first page of a read; each further page is twice the last
MAX_QUERY_PAGE_ROWS = 1000  # the most Azure returns in one page


@dataclass(frozen=True)
class Conversation:
    """A conversation as its owner names it."""

    owner: str
    id: str

    @property
    def partition(self) -> str:
        return keys.conversation_hash(self.owner, self.id)


@dataclass(frozen=True)
class Message:
    turn: int
    role: str
    content: str
    created_at: str
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass(frozen=True)
class Turn:
    number: int
    user: Message
    assistant: Message


@dataclass(frozen=True)
class History:
    """What a turn reads before it calls the model."""

    turns: list[Turn]  # the window, oldest first
    latest_turn: int  # 0 for a conversation with no turns yet
    replay: Turn | None = None  # the turn an Idempotency-Key already produced
    replay_request_hash: str | None = None


@dataclass(frozen=True)
class NewTurn:
    user_content: str
    answer: str
    finish_reason: str | None
    usage: Usage | None
    created_at: str = field(default_factory=lambda: utc_now())
    idempotency_key: str | None = None
    request_hash: str | None = None


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def request_hash(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


class HistoryStore:
    """The messages of every conversation, in the messages table."""

    def __init__(self, table: Table) -> None:
        self._table = table
        self._messages = table.client

    async def close(self) -> None:
        await self._table.close()

    async def ping(self) -> None:
        """One cheap read, to tell whether storage answers."""
        await self._table.ready()
        with storage_errors():
            async for _ in self._messages.query_entities("PartitionKey eq 'health'", results_per_page=1):
                break

    # -- the turn's critical path ------------------------------------------------------------

    async def read_history(
        self,
        conversation: Conversation,
        token_budget: int,
        estimate_tokens: Callable[[str], int],
        idempotency_key: str | None = None,
    ) -> History:
        """The newest whole turns that fit the budget, and the turn a retried request produced."""
        await self._table.ready()
        if idempotency_key is None:
            window, latest = await self._window(conversation, token_budget, estimate_tokens)
            return History(turns=window, latest_turn=latest)
        (window, latest), found = await asyncio.gather(
            self._window(conversation, token_budget, estimate_tokens),
            self.find_idempotent(conversation, idempotency_key),
        )
        replay, replay_hash = found if found else (None, None)
        return History(turns=window, latest_turn=latest, replay=replay, replay_request_hash=replay_hash)

    async def _window(
        self, conversation: Conversation, token_budget: int, estimate_tokens: Callable[[str], int]
    ) -> tuple[list[Turn], int]:
        window: list[Turn] = []
        latest = 0
        spent = 0
        async for turn in self._turns(conversation.partition, keys.TURN_PREFIX):
            latest = latest or turn.number
            cost = estimate_tokens(turn.user.content) + estimate_tokens(turn.assistant.content)
            if spent + cost > token_budget:
                break
            spent += cost
            window.append(turn)
        window.reverse()
        return window, latest

    async def latest_turn(self, conversation: Conversation) -> int:
        with storage_errors():
            async for entity in self._query(
                conversation.partition, keys.TURN_PREFIX, keys.TURN_END, page=1, select=["n"]
            ):
                return int(entity["n"])
        return 0

    async def find_idempotent(self, conversation: Conversation, idempotency_key: str) -> tuple[Turn, str] | None:
        with storage_errors():
            try:
                record = await self._messages.get_entity(
                    conversation.partition, keys.idempotency_row_key(idempotency_key)
                )
            except ResourceNotFoundError:
                return None
        turn = await self.find_turn(conversation, int(record["n"]))
        return (turn, record.get("req", "")) if turn else None

    async def find_turn(self, conversation: Conversation, number: int) -> Turn | None:
        async for turn in self._turns(conversation.partition, keys.turn_prefix(number)):
            return turn if turn.number == number else None
        return None

    async def append_turn(self, conversation: Conversation, number: int, turn: NewTurn) -> None:
        """Insert the user and assistant messages as turn `number`, atomically.

        Raises TurnConflict when a concurrent turn took the number (or the idempotency key).
        """
        entities = self._turn_entities(conversation, number, turn)
        _check_storable(entities)
        with storage_errors():
            try:
                await self._messages.submit_transaction([("create", entity) for entity in entities])
            except TableTransactionError as e:
                if e.error_code == "EntityAlreadyExists":
                    raise TurnConflict() from None
                raise

    def check_storable(self, conversation: Conversation, turn: NewTurn) -> None:
        """Raise AnswerTooLarge, before anything is written, for a turn no transaction can hold.

        A turn's size does not depend on its number (RowKeys have a fixed length).
        """
        _check_storable(self._turn_entities(conversation, 1, turn))

    def _turn_entities(self, conversation: Conversation, number: int, turn: NewTurn) -> list[dict[str, Any]]:
        partition = conversation.partition
        assistant = _message_entities(partition, number, "assistant", turn.answer, turn.created_at)
        assistant[0].update(conv=conversation.id, finish=turn.finish_reason or "")
        if turn.usage is not None:
            assistant[0].update(ptok=turn.usage.prompt_tokens, ctok=turn.usage.completion_tokens)
        entities = assistant + _message_entities(partition, number, "user", turn.user_content, turn.created_at)
        if turn.idempotency_key is not None:
            entities.append(
                {
                    "PartitionKey": partition,
                    "RowKey": keys.idempotency_row_key(turn.idempotency_key),
                    "n": number,
                    "req": turn.request_hash or "",
                }
            )
        return entities

    # -- reading messages -----------------------------------------------------------------

    async def messages_page(self, conversation: Conversation, limit: int, cursor: str | None) -> Page:
        """Up to `limit` messages, newest first in storage, returned oldest first."""
        await self._table.ready()
        start = decode_cursor(cursor, keys.is_message_start_key) if cursor else keys.TURN_PREFIX
        newest_first: list[Message] = []
        next_cursor = None
        async for message in self._message_stream(conversation.partition, start):
            if len(newest_first) == limit:
                next_cursor = encode_cursor(keys.message_start_key(message.turn, message.role))
                break
            newest_first.append(message)
        if not newest_first and cursor is None:
            raise ConversationNotFound()
        newest_first.reverse()
        return Page(items=newest_first, next_cursor=next_cursor)

    async def _turns(self, partition: str, start: str) -> AsyncIterator[Turn]:
        """Whole turns, newest first, from RowKey `start`."""
        assistant: Message | None = None
        async for message in self._message_stream(partition, start):
            if message.role == "assistant":
                assistant = message
            elif assistant is not None and assistant.turn == message.turn:
                yield Turn(number=message.turn, user=message, assistant=assistant)
                assistant = None

    async def _message_stream(self, partition: str, start: str) -> AsyncIterator[Message]:
        """Messages newest first, each reassembled from its rows."""
        rows: list[dict[str, Any]] = []
        async for entity in self._rows(partition, start):
            if rows and entity["RowKey"][:12] != rows[0]["RowKey"][:12]:
                yield _message(rows)
                rows = []
            rows.append(entity)
        if rows:
            yield _message(rows)

    async def _rows(self, partition: str, start: str) -> AsyncIterator[dict[str, Any]]:
        """Message rows from RowKey `start`, in pages that double in size.

        A read that stops early (a small window) fetches one small page; a window of many small
        messages takes a few round trips, not one per 32 rows, and reads at most about twice the rows
        it uses.
        """
        page_rows = QUERY_PAGE_ROWS
        continuation = None
        while True:
            with storage_errors():
                pages = self._query(partition, start, keys.TURN_END, page=page_rows).by_page(continuation)
                page = await anext(pages, None)
                entities = [entity async for entity in page] if page is not None else []
                continuation = pages.continuation_token
            for entity in entities:
                yield entity
            if not continuation:
                return
            page_rows = min(2 * page_rows, MAX_QUERY_PAGE_ROWS)

    def _query(
        self, partition: str, start: str, end: str, *, page: int, select: list[str] | None = None
    ) -> AsyncIterator[Any]:
        return self._messages.query_entities(
            "PartitionKey eq @pk and RowKey ge @start and RowKey lt @end",
            parameters={"pk": partition, "start": start, "end": end},
            results_per_page=page,
            select=select,
        )

    # -- deleting ---------------------------------------------------------------------------

    async def delete_conversation(self, conversation: Conversation) -> None:
        """Remove every row of the conversation, in transactions of 100. Idempotent."""
        await self._table.ready()
        partition = conversation.partition
        with storage_errors():
            batch: list[tuple[str, dict[str, str]]] = []
            async for entity in self._messages.query_entities(
                "PartitionKey eq @pk", parameters={"pk": partition}, select=["RowKey"], results_per_page=1000
            ):
                batch.append(("delete", {"PartitionKey": partition, "RowKey": entity["RowKey"]}))
                if len(batch) == 100:
                    await self._submit_deletes(batch)
                    batch = []
            if batch:
                await self._submit_deletes(batch)

    async def _submit_deletes(self, batch: list[tuple[str, dict[str, str]]]) -> None:
        try:
            await self._messages.submit_transaction(batch)
        except TableTransactionError as e:
            if e.error_code != "ResourceNotFound":
                raise
            # A concurrent delete removed some rows first: delete the rest one by one.
            for _, entity in batch:
                await self._messages.delete_entity(entity["PartitionKey"], entity["RowKey"])


def _check_storable(entities: list[dict[str, Any]]) -> None:
    try:
        check_transaction(entities)
    except LimitExceeded as e:
        log.warning("turn too large to store: %s", e)
        raise AnswerTooLarge("The answer is too large to store with this message.") from None


def _message_entities(partition: str, number: int, role: str, content: str, created_at: str) -> list[dict[str, Any]]:
    parts = split_text(content)
    rows = [parts[i : i + PARTS_PER_ROW] for i in range(0, len(parts), PARTS_PER_ROW)]
    entities = []
    for index, row_parts in enumerate(rows):
        entity: dict[str, Any] = {"PartitionKey": partition, "RowKey": keys.message_row_key(number, role, index)}
        if index == 0:
            entity.update(n=number, role=role, rows=len(rows), at=created_at)
        entity.update({f"c{i:02d}": part for i, part in enumerate(row_parts)})
        entities.append(entity)
    return entities


def _message(rows: list[dict[str, Any]]) -> Message:
    head = rows[0]
    number, role, _ = keys.parse_message_row_key(head["RowKey"])
    if len(rows) != int(head["rows"]):
        raise StorageUnavailable("A stored message is incomplete.")
    content = "".join(row[f"c{i:02d}"] for row in rows for i in range(PARTS_PER_ROW) if f"c{i:02d}" in row)
    usage = None
    if "ptok" in head:
        usage = Usage(prompt_tokens=int(head["ptok"]), completion_tokens=int(head["ctok"]))
    return Message(
        turn=number,
        role=role,
        content=content,
        created_at=head["at"],
        finish_reason=head.get("finish") or None,
        usage=usage,
    )
