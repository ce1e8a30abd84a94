"""A loopback TCP proxy in front of Azurite that records every storage request with its timestamps.

It forwards bytes untouched and watches each connection's HTTP/1.1 exchanges: the clients (the
Azure SDK over aiohttp) send one request at a time on a connection, so a request starts with the
first bytes the client sends after the server last spoke, and it ends with the last bytes the
server sends before the client speaks again. The times are `time.monotonic()`, one clock with the
benchmark's own, so requests overlap in the record as they overlapped on the wire: the ones that
overlap ran concurrently, the ones that follow one another ran in sequence.

    with RecordingProxy(azurite_port) as proxy:
        ...  # point a connection string at proxy.port
        requests = proxy.requests()

A record names the request's method, table and kind: `query` (a range read), `get` (one entity),
`batch` (an entity group transaction, with its operations counted), `create table`, or the
method of a single-entity write.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from dataclasses import dataclass, field

from standins.background import LoopThread

_REQUEST_LINE = re.compile(rb"^([A-Z]+) (\S+) HTTP/1\.[01]\r\n")
# Inside a batch body: each operation is an HTTP request line with the entity's table in its URL.
_BATCH_OPERATION = re.compile(rb"\r\n([A-Z]+) https?://[^/]+/[^/]+/([A-Za-z0-9]+)[(?\s]")
_READ_BYTES = 65536


@dataclass
class StorageRequest:
    method: str
    path: str
    started: float
    ended: float | None = None
    body_head: bytearray = field(default_factory=bytearray)

    @property
    def table(self) -> str:
        if self.kind == "create table":
            return ""  # the name is in the body
        if self.kind == "batch":
            found = _BATCH_OPERATION.search(bytes(self.body_head))
            return found.group(2).decode() if found else ""
        name = self.path.split("?", 1)[0].split("/")[2] if self.path.count("/") >= 2 else ""
        return name.split("(", 1)[0]

    @property
    def kind(self) -> str:
        resource = self.path.split("?", 1)[0]
        if resource.endswith("/$batch"):
            return "batch"
        if resource.endswith("/Tables") and self.method == "POST":
            return "create table"
        if self.method == "GET":
            return "query" if resource.endswith("()") else "get"
        return self.method.lower()

    @property
    def operations(self) -> int:
        if self.kind != "batch":
            return 1
        return len(_BATCH_OPERATION.findall(bytes(self.body_head)))

    def describe(self, table_prefix: str = "") -> str:
        table = self.table.removeprefix(table_prefix)
        if self.kind == "batch":
            return f"batch {table} ({self.operations} operations)"
        return f"{self.kind} {table}".strip()


class RecordingProxy:
    """The proxy, served from a background thread with its own event loop."""

    # A batch's operations are counted from the first bytes of its body; a turn's batch names its
    # operations within them.
    BODY_HEAD_BYTES = 256 * 1024

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.port = 0
        self._records: list[StorageRequest] = []
        self._lock = threading.Lock()
        self._background = LoopThread("storage-proxy")
        self._server: asyncio.Server | None = None

    def requests(self, since: float = 0.0) -> list[StorageRequest]:
        """The requests that started at or after `since` (a `time.monotonic()` reading), oldest first."""
        with self._lock:
            return [record for record in self._records if record.started >= since]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def start(self) -> RecordingProxy:
        self._background.start(self._serve, self._close)
        return self

    def stop(self) -> None:
        self._background.stop(self._close)

    def __enter__(self) -> RecordingProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._connection, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _connection(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            client_writer.close()
            return
        exchange = _Exchange(self)
        await asyncio.gather(
            self._pipe(client_reader, server_writer, exchange.from_client),
            self._pipe(server_reader, client_writer, exchange.from_server),
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen) -> None:
        try:
            while data := await reader.read(_READ_BYTES):
                seen(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def _record(self, request: StorageRequest) -> None:
        with self._lock:
            self._records.append(request)


class _Exchange:
    """One connection's requests, one at a time: the client speaks, then the server answers."""

    def __init__(self, proxy: RecordingProxy) -> None:
        self._proxy = proxy
        self._current: StorageRequest | None = None
        self._answering = True  # no request yet: the next bytes from the client start one

    def from_client(self, data: bytes) -> None:
        now = time.monotonic()
        if self._answering:
            self._answering = False
            line = _REQUEST_LINE.match(data)
            method, path = (line.group(1).decode(), line.group(2).decode()) if line else ("?", "?")
            self._current = StorageRequest(method, path, now)
            self._proxy._record(self._current)
        current = self._current
        if current is not None and len(current.body_head) < RecordingProxy.BODY_HEAD_BYTES:
            current.body_head += data[: RecordingProxy.BODY_HEAD_BYTES - len(current.body_head)]

    def from_server(self, data: bytes) -> None:
        self._answering = True
        if self._current is not None:
            self._current.ended = time.monotonic()


def sequential_depth(requests: list[StorageRequest]) -> int:
    """The most requests that ran one after another: the longest chain in which each request
    started after the one before it ended. Requests that overlap ran concurrently and so count
    once; a read, then a transaction beside a list update's read and write, is three deep."""
    spans = sorted((r.started, r.ended if r.ended is not None else r.started) for r in requests)
    depth: list[int] = []
    for index, (started, _) in enumerate(spans):
        before = [depth[j] for j in range(index) if spans[j][1] <= started]
        depth.append(1 + max(before, default=0))
    return max(depth, default=0)
