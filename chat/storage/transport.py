"""The HTTP transport under the table clients: one aiohttp session a worker, shared by every table.

Three things the storage SDK does not do by itself:

- Its pooled connections are let go after KEEPALIVE_SECONDS idle, before the service closes them
  (Azurite after 5 s; aiohttp's default would keep them 15 s). A request sent on a connection the
  service has closed is lost.
- A request that still meets a closed connection before any byte of its answer arrived is sent
  once more, on a new connection: aiohttp resends only GET, PUT and DELETE (once, on another
  pooled connection, which may be as stale), and the SDK's retry policy no POST, PATCH or MERGE.
- Each storage request, its retries included, ends within one deadline (the settings'
  `CHAT_STORAGE_TIMEOUT_SECONDS`): a service that accepts connections and never answers fails the
  request with a timeout instead of the SDK's read timeout times its retries.

It also tells its table when the service answers TableNotFound, so the table is created again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

import aiohttp
from azure.core.exceptions import ServiceRequestError, ServiceResponseTimeoutError
from azure.core.pipeline.transport import AioHttpTransport, AsyncHttpTransport

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 4.0  # below the 5 s Azurite keeps an idle connection, as Azure's front ends keep theirs longer
CONNECTION_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 30.0
TABLE_NOT_FOUND = "TableNotFound"


class StorageSessions:
    """The worker's two aiohttp sessions: a pool of kept-alive connections, and one that opens a
    new connection for every request, for the few requests sent again after a closed connection."""

    def __init__(self, *, trust_env: bool, keepalive_seconds: float = KEEPALIVE_SECONDS) -> None:
        self.keepalive_seconds = keepalive_seconds
        self._trust_env = trust_env
        self._pooled: aiohttp.ClientSession | None = None
        self._fresh: aiohttp.ClientSession | None = None

    def pooled(self) -> aiohttp.ClientSession:
        if self._pooled is None:
            self._pooled = self._session(aiohttp.TCPConnector(keepalive_timeout=self.keepalive_seconds))
        return self._pooled

    def fresh(self) -> aiohttp.ClientSession:
        if self._fresh is None:
            self._fresh = self._session(aiohttp.TCPConnector(force_close=True))
        return self._fresh

    def _session(self, connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
        # As the SDK makes its own: no cookies, bodies as sent (the SDK decodes them itself).
        return aiohttp.ClientSession(
            connector=connector, trust_env=self._trust_env, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
        )

    async def close(self) -> None:
        for session in (self._pooled, self._fresh):
            if session is not None:
                await session.close()
        self._pooled = self._fresh = None


class StorageTransport(AsyncHttpTransport):
    """One table client's transport, over the worker's sessions (which it never closes)."""

    def __init__(self, sessions: StorageSessions, *, deadline_seconds: float) -> None:
        self._sessions = sessions
        self._deadline_seconds = deadline_seconds
        self._pooled: AioHttpTransport | None = None
        self._fresh: AioHttpTransport | None = None
        # When each request (the same object through the SDK's retries) must be answered by.
        self._deadlines: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        self._table_missing: Callable[[], None] | None = None

    def when_table_missing(self, notify: Callable[[], None]) -> None:
        self._table_missing = notify

    async def send(self, request: Any, **kwargs: Any) -> Any:
        deadline = self._deadlines.setdefault(request, time.monotonic() + self._deadline_seconds)
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                response = await self._send(request, **kwargs)
                if _is_batch(request) and response.status_code == 202:
                    await response.read()  # read here, under the deadline; the SDK reads it again from memory
        except TimeoutError:
            log.error("storage did not answer within %s s", self._deadline_seconds)
            raise ServiceResponseTimeoutError(f"Storage did not answer within {self._deadline_seconds:g} s.") from None
        if self._table_missing is not None and _says_table_not_found(request, response):
            self._table_missing()
        return response

    async def _send(self, request: Any, **kwargs: Any) -> Any:
        """Send on a pooled connection; once more on a new one if it was closed before any answer.

        Sending any request the stores make twice stores nothing twice: see docs/storage.md,
        "Connections, retries and deadlines".
        """
        if self._pooled is None or self._fresh is None:
            # Made on first use, inside the worker's event loop, over the worker's sessions.
            self._pooled = _over(self._sessions.pooled())
            self._fresh = _over(self._sessions.fresh())
        try:
            return await self._pooled.send(request, **kwargs)
        except ServiceRequestError as e:
            if not _closed_before_answer(e):
                raise
        log.warning("storage closed the connection before answering a %s; sending it again", request.method)
        return await self._fresh.send(request, **kwargs)

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass  # the sessions are the worker's, closed once at shut-down

    async def __aenter__(self) -> StorageTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass


def _closed_before_answer(error: ServiceRequestError) -> bool:
    """The connection was closed, or reset, before any byte of an answer came back."""
    inner = error.inner_exception
    if isinstance(inner, aiohttp.ClientConnectorError):
        return False  # never connected: the SDK's own retries handle that
    return isinstance(inner, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError)


def _is_batch(request: Any) -> bool:
    return request.method.upper() == "POST" and request.url.split("?", 1)[0].endswith("/$batch")


def _says_table_not_found(request: Any, response: Any) -> bool:
    if response.status_code == 404:
        return bool(response.headers.get("x-ms-error-code") == TABLE_NOT_FOUND)
    # A transaction answers 202, and the part that failed says why.
    return _is_batch(request) and response.status_code == 202 and TABLE_NOT_FOUND.encode() in response.content


def _over(session: aiohttp.ClientSession) -> AioHttpTransport:
    return AioHttpTransport(
        session=session,
        session_owner=False,
        connection_timeout=CONNECTION_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
    )
