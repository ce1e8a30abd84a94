"""An event loop in a thread of its own, for servers that synchronous code starts and stops.

A pytest fixture or a benchmark cannot await; the stand-ins and the tests' proxies serve from a
loop of their own instead, so the caller's loop, blocked or not, does not hold them up::

    loop = LoopThread("fault-proxy")
    port = loop.start(serve)    # runs serve() on the loop and waits for it
    ...
    loop.stop(close)            # runs close(), then ends the loop and its thread
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

TIMEOUT_SECONDS = 30


class LoopThread:
    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(
        self,
        serve: Callable[[], Coroutine[Any, Any, T]],
        close: Callable[[], Coroutine[Any, Any, object]] | None = None,
    ) -> T:
        """Start the loop and run `serve()` on it; if that fails, stop(close) undoes it."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} is already running")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name=self.name, daemon=True)
        self._thread.start()
        try:
            return self.run(serve())
        except BaseException:
            self.stop(close)
            raise

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the loop and wait for its result."""
        if self._loop is None:
            coroutine.close()
            raise RuntimeError(f"{self.name} is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=TIMEOUT_SECONDS)

    def stop(self, close: Callable[[], Coroutine[Any, Any, object]] | None = None) -> None:
        """Run `close()` on the loop, then end the loop and its thread; nothing if not running."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if close is not None:
                self.run(close())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=TIMEOUT_SECONDS)
            loop.close()
            self._loop = self._thread = None
