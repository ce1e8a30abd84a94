"""The queue background responses wait in (chat.engine.ports.JobQueue), on Azure Storage Queues:
each message is a response ID, base64-encoded as the Functions queue trigger reads it by default.

In Azure the queue-triggered function (function_app.py) takes the messages; locally chat/local.py
polls the same queue on Azurite (`receive`), deleting each message once its job has run. The queue
is created on first use, unless the app may not create queues: then the deployment made it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import HttpResponseError

from chat.storage.tables import MadeOnFirstUse, create_unless_made, storage_errors

if TYPE_CHECKING:  # azure-storage-queue is imported with the first use of the queue
    from azure.storage.queue.aio import QueueClient


def encoding() -> dict[str, Any]:
    """What the clients are made with (chat/dependencies.py): base64, as the Functions trigger reads."""
    from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy

    return {"message_encode_policy": TextBase64EncodePolicy(), "message_decode_policy": TextBase64DecodePolicy()}


@dataclass(frozen=True)
class Delivery:
    """One delivery of a message: the response it names, how many times it was delivered."""

    response_id: str
    dequeue_count: int
    message_id: str
    pop_receipt: str


class JobQueue:
    """The queue, its client made by `connect` on first use (a worker that never queues a response
    never imports the Queue Storage SDK)."""

    def __init__(self, name: str, connect: Callable[[], QueueClient]) -> None:
        self.name = name
        self._connect = connect
        self._made_client: QueueClient | None = None
        self._made = MadeOnFirstUse(lambda: create_unless_made(self._client.create_queue, f"queue {self.name}"))

    @property
    def _client(self) -> QueueClient:
        if self._made_client is None:
            self._made_client = self._connect()
        return self._made_client

    async def send(self, response_id: str) -> None:
        await self._made.ensure()
        with storage_errors():
            await self._client.send_message(response_id)

    async def receive(self, visibility_seconds: int, batch: int = 4) -> AsyncIterator[Delivery]:
        """The messages visible now, each hidden from other readers for `visibility_seconds`."""
        await self._made.ensure()
        with storage_errors():
            messages = [
                message
                async for message in self._client.receive_messages(
                    messages_per_page=batch, max_messages=batch, visibility_timeout=visibility_seconds
                )
            ]
        for message in messages:
            content = message.content
            text = content.decode() if isinstance(content, bytes) else str(content)
            yield Delivery(text, int(message.dequeue_count or 1), message.id, message.pop_receipt or "")

    async def delete(self, delivery: Delivery) -> None:
        """Done with a message; one another reader took meanwhile (its receipt changed) is no error."""
        with storage_errors(), contextlib.suppress(HttpResponseError):
            await self._client.delete_message(delivery.message_id, delivery.pop_receipt)

    async def close(self) -> None:
        if self._made_client is not None:
            await self._made_client.close()
