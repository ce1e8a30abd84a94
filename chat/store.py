"""Conversation history in Azure Table Storage.

One partition per (owner, conversation): every row of a turn is written by one entity group
transaction, so a turn is stored whole or not at all. Turns are inserted under their sequence
number; an insert that clashes with a concurrent turn fails as a whole (TurnConflict), and the
service renumbers and retries. Reading the window is one query over RowKeys that sort newest
first, stopped as soon as the token budget is spent: its cost follows the window, not the
conversation. The key layout is in keys.py, the size limits in table_limits.py, and the whole
protocol in docs/storage.md.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient

from . import keys
from .errors import AnswerTooLarge, ConversationNotFound, InvalidRequest, StorageUnavailable, TurnConflict
from .table_limits import PARTS_PER_ROW, LimitExceeded, check_transaction, split_text
from .usage import Usage

log = logging.getLogger(__name__)

QUERY_PAGE_ROWS = 32  # the first page of a read; each further page is twice the last
MAX_QUERY_PAGE_ROWS = 1000  # the most Azure returns in one page
TITLE_CHARS = 80
ACTIVITY_ATTEMPTS = 20


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


@dataclass(frozen=True)
class ConversationSummary:
    id: str
    title: str
    created_at: str
    updated_at: str
    message_count: int


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def request_hash(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


class HistoryStore:
    """History and the owner's conversation list in two tables."""

    def __init__(self, messages: TableClient, conversations: TableClient) -> None:
        self._messages = messages
        self._conversations = conversations
        self._tables_ready = False
        self._tables_lock = asyncio.Lock()

    async def close(self) -> None:
        await self._messages.close()
        await self._conversations.close()

    async def ping(self) -> None:
        """One cheap read, to tell whether storage answers."""
        await self._ensure_tables()
        with _storage_errors():
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
        await self._ensure_tables()
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
        with _storage_errors():
            async for entity in self._query(
                conversation.partition, keys.TURN_PREFIX, keys.TURN_END, page=1, select=["n"]
            ):
                return int(entity["n"])
        return 0

    async def find_idempotent(self, conversation: Conversation, idempotency_key: str) -> tuple[Turn, str] | None:
        with _storage_errors():
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
        with _storage_errors():
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
        await self._ensure_tables()
        start = _decode_cursor(cursor, keys.TURN_PREFIX) if cursor else keys.TURN_PREFIX
        if cursor and not keys.is_message_start_key(start):
            raise InvalidRequest("The cursor is not valid.", code="invalid_cursor")
        newest_first: list[Message] = []
        next_cursor = None
        async for message in self._message_stream(conversation.partition, start):
            if len(newest_first) == limit:
                next_cursor = _encode_cursor(keys.message_start_key(message.turn, message.role))
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
            with _storage_errors():
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
        """Remove every row of the conversation and its listing entry. Idempotent."""
        await self._ensure_tables()
        await self._forget_listing(conversation)
        partition = conversation.partition
        with _storage_errors():
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

    # -- the owner's conversation list -----------------------------------------------------------

    async def record_activity(
        self, conversation: Conversation, *, first_message: str, at: str, message_count: int, retitle: bool = False
    ) -> bool:
        """Keep the owner's list in activity order: one record and one index row per conversation.

        Concurrent updates are serialized by the record's ETag; counts and times only grow, and an
        update that would change nothing is skipped, so racing turns settle quickly. The title is
        `first_message` of the call that creates the record, or of a call that says `retitle`
        (it knows `first_message` opened the conversation). Returns whether the title is
        `first_message`'s.
        """
        partition = keys.owner_partition(conversation.owner)
        chash = conversation.partition
        record_key = keys.record_row_key(chash)
        for _ in range(ACTIVITY_ATTEMPTS):
            with _storage_errors():
                try:
                    record = await self._conversations.get_entity(partition, record_key)
                except ResourceNotFoundError:
                    record = None
                if record is None:
                    summary = {
                        "id": conversation.id,
                        "title": _title(first_message),
                        "created": at,
                        "updated": at,
                        "count": message_count,
                    }
                    index_key = keys.activity_row_key(_millis(at), chash)
                    operations = [
                        ("create", {"PartitionKey": partition, "RowKey": record_key, "idx": index_key, **summary}),
                        ("create", {"PartitionKey": partition, "RowKey": index_key, **summary}),
                    ]
                else:
                    title = _title(first_message) if retitle else record["title"]
                    if int(record["count"]) >= message_count and record["updated"] >= at and record["title"] == title:
                        return title == _title(first_message)
                    updated = max(record["updated"], at)
                    summary = {
                        "id": record["id"],
                        "title": title,
                        "created": record["created"],
                        "updated": updated,
                        "count": max(int(record["count"]), message_count),
                    }
                    index_key = keys.activity_row_key(_millis(updated), chash)
                    operations = [
                        (
                            "update",
                            {"PartitionKey": partition, "RowKey": record_key, "idx": index_key, **summary},
                            {
                                "mode": UpdateMode.REPLACE,
                                "etag": record.metadata["etag"],
                                "match_condition": MatchConditions.IfNotModified,
                            },
                        ),
                    ]
                    if index_key != record["idx"]:
                        operations.append(("delete", {"PartitionKey": partition, "RowKey": record["idx"]}))
                    operations.append(
                        (
                            "upsert",
                            {"PartitionKey": partition, "RowKey": index_key, **summary},
                            {"mode": UpdateMode.REPLACE},
                        )
                    )
                try:
                    await self._conversations.submit_transaction(operations)
                    return summary["title"] == _title(first_message)
                except TableTransactionError as e:
                    if e.error_code not in ("EntityAlreadyExists", "UpdateConditionNotSatisfied", "ResourceNotFound"):
                        raise
        raise StorageUnavailable("The conversation list is too busy to update; try again.")

    async def list_conversations(self, owner: str, limit: int, cursor: str | None) -> Page:
        await self._ensure_tables()
        start = _decode_cursor(cursor, keys.ACTIVITY_PREFIX) if cursor else keys.ACTIVITY_PREFIX
        items: list[ConversationSummary] = []
        next_cursor = None
        with _storage_errors():
            async for entity in self._conversations.query_entities(
                "PartitionKey eq @pk and RowKey ge @start and RowKey lt @end",
                parameters={"pk": keys.owner_partition(owner), "start": start, "end": keys.ACTIVITY_END},
                results_per_page=min(limit + 1, 1000),
            ):
                if len(items) == limit:
                    next_cursor = _encode_cursor(entity["RowKey"])
                    break
                items.append(
                    ConversationSummary(
                        id=entity["id"],
                        title=entity["title"],
                        created_at=entity["created"],
                        updated_at=entity["updated"],
                        message_count=int(entity["count"]),
                    )
                )
        return Page(items=items, next_cursor=next_cursor)

    async def _forget_listing(self, conversation: Conversation) -> None:
        partition = keys.owner_partition(conversation.owner)
        record_key = keys.record_row_key(conversation.partition)
        for _ in range(ACTIVITY_ATTEMPTS):
            with _storage_errors():
                try:
                    record = await self._conversations.get_entity(partition, record_key)
                except ResourceNotFoundError:
                    return
                try:
                    await self._conversations.submit_transaction(
                        [
                            (
                                "delete",
                                {"PartitionKey": partition, "RowKey": record_key},
                                {"etag": record.metadata["etag"], "match_condition": MatchConditions.IfNotModified},
                            ),
                            ("delete", {"PartitionKey": partition, "RowKey": record["idx"]}),
                        ]
                    )
                    return
                except TableTransactionError as e:
                    if e.error_code not in ("UpdateConditionNotSatisfied", "ResourceNotFound"):
                        raise
        raise StorageUnavailable("The conversation list is too busy to update; try again.")

    # -- the daily token quota ------------------------------------------------------------------

    async def tokens_used(self, owner: str, day: str) -> int:
        await self._ensure_tables()
        with _storage_errors():
            try:
                entity = await self._conversations.get_entity(keys.owner_partition(owner), keys.usage_row_key(day))
            except ResourceNotFoundError:
                return 0
        return int(entity["tokens"])

    async def add_tokens(self, owner: str, day: str, tokens: int) -> None:
        """Add to the owner's count for the day; concurrent additions are serialized by ETag."""
        partition = keys.owner_partition(owner)
        row_key = keys.usage_row_key(day)
        for _ in range(ACTIVITY_ATTEMPTS):
            with _storage_errors():
                try:
                    entity = await self._conversations.get_entity(partition, row_key)
                except ResourceNotFoundError:
                    try:
                        await self._conversations.create_entity(
                            {"PartitionKey": partition, "RowKey": row_key, "tokens": tokens}
                        )
                        return
                    except ResourceExistsError:
                        continue
                try:
                    await self._conversations.update_entity(
                        {"PartitionKey": partition, "RowKey": row_key, "tokens": int(entity["tokens"]) + tokens},
                        mode=UpdateMode.REPLACE,
                        etag=entity.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                    return
                except ResourceModifiedError:
                    continue
        raise StorageUnavailable("The token count is too busy to update; try again.")

    # -- tables ---------------------------------------------------------------------------------

    async def _ensure_tables(self) -> None:
        """Create the tables on first use, once per worker."""
        if self._tables_ready:
            return
        async with self._tables_lock:
            if self._tables_ready:
                return
            for table in (self._messages, self._conversations):
                with _storage_errors(), suppress(ResourceExistsError):
                    await table.create_table()
            self._tables_ready = True


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


def _title(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


def _millis(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


def _encode_cursor(row_key: str) -> str:
    return base64.urlsafe_b64encode(row_key.encode("ascii")).decode("ascii").rstrip("=")


def _decode_cursor(cursor: str, prefix: str) -> str:
    try:
        row_key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequest("The cursor is not valid.", code="invalid_cursor") from None
    if not row_key.startswith(prefix) or not row_key.isalnum() or len(row_key) > 100:
        raise InvalidRequest("The cursor is not valid.", code="invalid_cursor")
    return row_key


@contextmanager
def _storage_errors() -> Iterator[None]:
    """Azure SDK errors become StorageUnavailable; callers never see azure.core errors."""
    try:
        yield
    except ClientAuthenticationError as e:
        log.error("storage refused our credential: %s", e.message)
        raise StorageUnavailable("Storage refused the app's credential; check its role assignments.") from e
    except HttpResponseError as e:
        log.error("storage error %s: %s", e.status_code, e.message)
        raise StorageUnavailable("Storage failed; try again.") from e
    except AzureError as e:
        log.error("storage unreachable: %s", e)
        raise StorageUnavailable("Storage is unreachable; try again.") from e
