"""Table Storage plumbing shared by the stores: tables made on first use, the SDK's errors turned
into ours, and the opaque cursors of paged reads."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError, ResourceExistsError
from azure.data.tables.aio import TableClient

from chat.engine.errors import InvalidRequest, StorageUnavailable

log = logging.getLogger(__name__)


class Table:
    """A table client whose table is created on first use, once per worker."""

    def __init__(self, client: TableClient) -> None:
        self.client = client
        self._ready = False
        self._lock = asyncio.Lock()

    async def ready(self) -> TableClient:
        if not self._ready:
            async with self._lock:
                if not self._ready:
                    with storage_errors(), suppress(ResourceExistsError):
                        await self.client.create_table()
                    self._ready = True
        return self.client

    async def close(self) -> None:
        await self.client.close()


def encode_cursor(row_key: str) -> str:
    return base64.urlsafe_b64encode(row_key.encode("ascii")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, is_page_start: Callable[[str], bool]) -> str:
    """The RowKey a cursor names, if it is one where a page of this kind may start."""
    try:
        row_key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequest("The cursor is not valid.", code="invalid_cursor") from None
    if not is_page_start(row_key):
        raise InvalidRequest("The cursor is not valid.", code="invalid_cursor")
    return row_key


@contextmanager
def storage_errors() -> Iterator[None]:
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
