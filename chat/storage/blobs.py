"""Blob Storage in the same account, for what no Table transaction can hold: the rows of a turn too
big for one (many items, or more text than 4 MiB). Each such turn's rows are one immutable blob,
written before the transaction that makes the turn visible, under a name no other write uses."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceNotFoundError

from chat.storage.tables import MadeOnFirstUse, create_unless_made, storage_errors

if TYPE_CHECKING:  # azure-storage-blob is imported with the first turn that needs a blob
    from azure.storage.blob.aio import ContainerClient

log = logging.getLogger(__name__)


class TurnBlobs:
    """A container of turn bodies, created on first use, once per worker, unless the app may not
    create containers (403): then the deployment made it. Its client is made by `connect` on first
    use too: most workers never need a blob, and so never import the Blob Storage SDK."""

    def __init__(self, name: str, connect: Callable[[], ContainerClient]) -> None:
        self.name = name
        self._connect = connect
        self._client: ContainerClient | None = None
        self._made = MadeOnFirstUse(
            lambda: create_unless_made(self._container.create_container, f"container {self.name}")
        )

    @property
    def _container(self) -> ContainerClient:
        if self._client is None:
            self._client = self._connect()
        return self._client

    @staticmethod
    def new_name(partition: str, number: int) -> str:
        """A name of its own for one attempt at storing turn `number` of `partition`: an attempt
        that loses to another writer never overwrites what the winner wrote."""
        return f"{partition}/{number:010d}-{uuid.uuid4().hex}"

    async def put(self, name: str, data: bytes) -> None:
        for attempt in range(2):
            await self._made.ensure()
            with storage_errors():
                try:
                    await self._container.upload_blob(name, data, overwrite=True)
                    return
                except ResourceNotFoundError:
                    if attempt:
                        raise
                    # The container went away (an emulator restarted): make it again, once.
                    log.warning("container %s does not exist; it is created again", self.name)
                    self._made.forget()

    async def get(self, name: str) -> bytes:
        with storage_errors():
            downloader = await self._container.download_blob(name)
            return await downloader.readall()

    async def delete(self, name: str) -> None:
        """Delete a blob; one already gone is no error."""
        with storage_errors(), contextlib.suppress(ResourceNotFoundError):
            await self._container.delete_blob(name)

    async def forget(self, name: str) -> None:
        """Delete a blob nothing refers to, as well as storage lets us: one left behind is only space."""
        try:
            await self.delete(name)
        except Exception as e:  # the turn's own outcome is what the caller reports
            log.warning("could not delete unused blob %s: %s", name, e)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
