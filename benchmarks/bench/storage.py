"""The run's own storage clients: conversations seeded with the store's rows, the storage floor
(a turn's read and transaction made directly with the SDK), and a timed turn taken back out."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from chat.dependencies import storage_options
from chat.engine.clock import utc_now
from chat.engine.history import Conversation, NewTurn
from chat.engine.items import Usage, message
from chat.storage import codec, keys
from chat.storage.conversations import ConversationIndex
from chat.storage.limits import MAX_TRANSACTION_ENTITIES
from chat.storage.message_table import QUERY_PAGE_ROWS
from chat.storage.messages import TurnStore
from chat.storage.tables import Table, range_rows

QUESTION = "Question {n}: how does the partition layout keep a long conversation's reads short?"
ANSWER = (
    "Answer {n}: RowKeys sort newest first, so the history query reads the newest turns and stops "
    "once the token budget is spent; the rest of the conversation is never read. " * 2
)
# Turns of the long conversations: about 1,000 estimated tokens each, so 32 of them fill the
# default budget of 32,000 and 100 messages are past a full window.
LONG_QUESTION = "Question {n}: " + "why does a turn read only the newest rows of its partition? " * 10
LONG_ANSWER = "Answer {n}: " + "the history query stops once the token budget is spent, whatever the length. " * 31


class Storage:
    """The benchmark's own clients of the app's two tables, straight on Azurite."""

    def __init__(self, connection_string: str, prefix: str) -> None:
        # The clients the app makes (chat/dependencies.py), so the storage floor is the SDK as the
        # app runs it.
        options = storage_options(os.environ)
        self.messages = TableClient.from_connection_string(connection_string, table_name=f"{prefix}messages", **options)
        self.conversations = TableClient.from_connection_string(
            connection_string, table_name=f"{prefix}conversations", **options
        )
        self.store = TurnStore(Table(self.messages))
        self.list = ConversationIndex(Table(self.conversations), self.store.read_head)

    async def create(self) -> None:
        await Table(self.messages).ready()
        await Table(self.conversations).ready()

    async def close(self) -> None:
        await self.messages.close()
        await self.conversations.close()

    async def seed(self, conversation: Conversation, turns: int, question: str, answer: str) -> None:
        """A conversation of `turns` turns, its rows built by the store's own code and written a
        transaction of 100 entities at a time (a transaction per turn would take minutes for
        10,000 messages), its head, and its entry in the owner's list."""
        entities = []
        for number in range(1, turns + 1):
            turn = NewTurn(
                inputs=(message("user", question.format(n=number)),),
                outputs=(message("assistant", answer.format(n=number)),),
                finish_reason="stop",
                usage=Usage(prompt_tokens=100, completion_tokens=60),
            )
            entities += codec.turn_entities(conversation, number, turn)
        entities.append(codec.head_entity(conversation.key, turns, 0, int(time.time())))
        for start in range(0, len(entities), MAX_TRANSACTION_ENTITIES):
            batch = entities[start : start + MAX_TRANSACTION_ENTITIES]
            await self.messages.submit_transaction([("create", entity) for entity in batch])
        await self.list.record_activity(
            conversation, floor=0, first_message=question.format(n=1), at=utc_now(), message_count=2 * turns
        )

    async def seed_many(self, conversations: Sequence[Conversation], turns: int, question: str, answer: str) -> None:
        limit = asyncio.Semaphore(8)

        async def one(conversation: Conversation) -> None:
            async with limit:
                await self.seed(conversation, turns, question, answer)

        await asyncio.gather(*(one(conversation) for conversation in conversations))

    async def floor(self, conversation: Conversation, content: str) -> tuple[float, float, float, float]:
        """The storage floor of one turn: the history read (the app's query, from the head, in
        pages from 32 rows) and the turn's transaction (its rows, built by the store's own code
        outside the clocks, inserted with the head replaced under its ETag), made directly with
        the SDK. Returns the read's and the transaction's seconds, then their CPU seconds."""
        cpu, started = time.process_time(), time.perf_counter()
        rows = [
            entity
            async for entity in self.messages.query_entities(
                "PartitionKey eq @pk and RowKey ge @start and RowKey lt @end",
                parameters={"pk": conversation.key, "start": keys.HEAD_ROW_KEY, "end": keys.TURN_END},
                results_per_page=QUERY_PAGE_ROWS,
            )
        ]
        read, read_cpu = time.perf_counter() - started, time.process_time() - cpu
        head = rows[0]
        number = int(head["n"]) + 1
        turn = NewTurn(
            inputs=(message("user", content),),
            outputs=(message("assistant", f"Echo #{2 * (number - 1)}: {content}"),),
            finish_reason="stop",
            usage=Usage(prompt_tokens=40, completion_tokens=12),
        )
        operations: list[Any] = [("create", entity) for entity in codec.turn_entities(conversation, number, turn)]
        condition = {
            "mode": UpdateMode.REPLACE,
            "etag": head.metadata["etag"],
            "match_condition": MatchConditions.IfNotModified,
        }
        operations.append(("update", {**head, "n": number}, condition))
        cpu, started = time.process_time(), time.perf_counter()
        await self.messages.submit_transaction(operations)
        return read, time.perf_counter() - started, read_cpu, time.process_time() - cpu

    async def window_read(self, conversation: Conversation, rows: int) -> float:
        """The history read alone, as the app makes it (from the head, in pages of 32, then 64 rows,
        ...) for `rows` rows: seconds."""
        started = time.perf_counter()
        read = 0
        async for _ in range_rows(
            self.messages, conversation.key, keys.HEAD_ROW_KEY, keys.TURN_END, first_page=QUERY_PAGE_ROWS
        ):
            read += 1
            if read == rows:
                break
        return time.perf_counter() - started

    async def remove_turn(self, conversation: Conversation, number: int) -> None:
        """Delete turn `number` (its rows and their index rows) and put the head back, so the next
        timed turn sees the same conversation."""
        start = keys.turn_prefix(number)
        rows = self.messages.query_entities(
            "PartitionKey eq @pk and RowKey ge @start and RowKey lt @end",
            parameters={"pk": conversation.key, "start": start, "end": start + "z"},
            select=["RowKey", "id"],
        )
        async for entity in rows:
            await self.messages.delete_entity(conversation.key, entity["RowKey"])
            if entity.get("id"):
                await self.messages.delete_entity(conversation.key, keys.item_index_row_key(entity["id"]))
        head = await self.messages.get_entity(conversation.key, keys.HEAD_ROW_KEY)
        await self.messages.update_entity({**head, "n": number - 1}, mode=UpdateMode.REPLACE)
