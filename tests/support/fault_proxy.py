"""An HTTP proxy in front of Azurite that plays storage faults on the requests a test names.

    with FaultProxy(azurite.port) as proxy:
        ...  # point the app's connection string at proxy.endpoint
        proxy.add(Fault("lose answer", batch_into(table)))

Each fault matches requests by a predicate on the method, the path and the body, and acts on
the next `times` of them:

- ``lose answer``: the request reaches Azurite, which carries it out; its answer never comes
  back (the connection is closed instead), as when a connection drops mid-request.
- ``500 after``: Azurite carries it out, and the client is answered 500 (a server error that
  came after the write).
- ``500`` / ``503``: answered with that status; Azurite never sees the request.
- ``cut``: the connection is closed before the request is forwarded.
- ``slow``: the request is held `delay` seconds before it is forwarded (and then carried out,
  whether or not the client still waits), as on a congested path.
- ``slow after``: Azurite carries it out at once; its answer is held `delay` seconds.

`done` counts the requests a fault acted on whose handling has ended, so a test can wait for a
held request to have reached Azurite before it looks at what is stored.

It runs in a thread with an event loop of its own, so a test's own loop, blocked or not, does
not hold it up.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from yarl import URL

from standins.background import LoopThread
from tests.support.azurite import AZURITE_ACCOUNT

# Hop-by-hop headers, and those aiohttp sets itself from the body it sends.
_NOT_FORWARDED = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive"})
_ACTIONS = ("lose answer", "500 after", "500", "503", "cut", "slow", "slow after")


@dataclass
class Fault:
    action: str
    matches: Callable[[str, str, bytes], bool]
    times: int = 1
    delay: float = 3.0  # seconds, for the slow ones
    seen: int = field(default=0, init=False)  # how many requests it acted on
    done: int = field(default=0, init=False)  # of those, how many have been handled to the end

    def __post_init__(self) -> None:
        if self.action not in _ACTIONS:
            raise ValueError(f"unknown fault {self.action!r}")


def batch_into(table: str) -> Callable[[str, str, bytes], bool]:
    """A predicate: an entity group transaction on `table`."""
    operation = re.compile(rb"https?://[^/]+/[^/]+/" + re.escape(table.encode()) + rb"[(\s?]")
    return lambda method, path, body: path.endswith("/$batch") and bool(operation.search(body))


def write_to(table: str) -> Callable[[str, str, bytes], bool]:
    """A predicate: any write on `table`, in a transaction or alone."""
    in_batch = batch_into(table)

    def matches(method: str, path: str, body: bytes) -> bool:
        if in_batch(method, path, body):
            return True
        resource = path.split("?", 1)[0]
        return method != "GET" and resource.split("/")[2:3] != [] and resource.split("/")[2].split("(")[0] == table

    return matches


class FaultProxy:
    def __init__(self, target_port: int) -> None:
        self.target = f"http://127.0.0.1:{target_port}"
        self.port = 0
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._background = LoopThread("fault-proxy")
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def __enter__(self) -> FaultProxy:
        self._background.start(self._serve, self._close)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._background.stop(self._close)

    async def _serve(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _fault_for(self, method: str, path: str, body: bytes) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.seen < fault.times and fault.matches(method, path, body):
                    fault.seen += 1
                    return fault
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        fault = self._fault_for(request.method, request.raw_path, body)
        try:
            return await self._act(request, body, fault)
        finally:
            if fault is not None:
                with self._lock:
                    fault.done += 1

    async def _act(self, request: web.Request, body: bytes, fault: Fault | None) -> web.StreamResponse:
        action = fault.action if fault else None
        if fault is not None and action == "slow":
            await asyncio.sleep(fault.delay)
        if action == "cut":
            _close(request)
            return web.Response()
        if action in ("500", "503"):
            return _error(int(action))
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        async with self._session.request(
            request.method,
            URL(self.target + request.raw_path, encoded=True),
            headers=headers,
            data=body or None,
            allow_redirects=False,
            skip_auto_headers=("Content-Type", "User-Agent", "Accept-Encoding", "Accept"),
        ) as answer:
            answered = await answer.read()
            if action == "lose answer":
                _close(request)
                return web.Response()
            if action == "500 after":
                return _error(500)
            if fault is not None and action == "slow after":
                await asyncio.sleep(fault.delay)
            out = {k: v for k, v in answer.headers.items() if k.lower() not in _NOT_FORWARDED}
            return web.Response(status=answer.status, headers=out, body=answered)


def _close(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


def _error(status: int) -> web.Response:
    code = {500: "InternalError", 503: "ServerBusy"}[status]
    return web.json_response(
        {"odata.error": {"code": code, "message": {"lang": "en-US", "value": "A fault of the test's proxy."}}},
        status=status,
        headers={"x-ms-error-code": code},
    )
