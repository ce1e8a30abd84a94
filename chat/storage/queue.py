"""The queue background responses wait in (chat.engine.ports.JobQueue), on Azure Storage Queues:
each message is a response ID, base64-encoded as the Functions queue trigger reads it by default.

In Azure the queue-triggered function (function_app.py) takes the messages; locally chat/local.py
polls the same queue on Azurite (`receive`), deleting each message once its job has run. The queue
is created on first use, unless the app may not create queues: then the deployment made it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from azure.core.exceptions import HttpResponseError
from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from chat.storage.tables import MadeOnFirstUse, create_unless_made, storage_errors

# What the clients are made with (chat/dependencies.py): base64, as the Functions trigger reads.
ENCODING = {"message_encode_policy": TextBase64EncodePolicy(), "message_decode_policy": TextBase64DecodePolicy()}


@dataclass(frozen=True)
class Delivery:
    """One delivery of a message: the response it names, how many times it was delivered."""

    response_id: str
    dequeue_count: int
    message_id: str
    pop_receipt: str


class JobQueue:
    def __init__(self, client: QueueClient) -> None:
        self._client = client
        self._made = MadeOnFirstUse(lambda: create_unless_made(client.create_queue, f"queue {self.name}"))

    @property
    def name(self) -> str:
        return str(self._client.queue_name)

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
        await self._client.close()
