"""A loopback TCP forwarder in front of Azurite whose connections go stale while the client holds them.

A server closes a keep-alive connection once it has been idle for its timeout (Azurite after 5 s,
Azure's front ends after theirs). A client that does not see that close before it sends (the close
and the request cross, or a box in between dropped the connection without a word) has its request
on a dead connection: it gets the connection closed before any byte of an answer. This forwarder
makes that crossing happen every time: a request that arrives on a connection idle longer than
`idle_seconds` is not forwarded; the connection is closed. `dropped` counts those requests.
"""

from __future__ import annotations

import asyncio

from standins.background import LoopThread


class StaleProxy:
    def __init__(self, upstream_port: int, idle_seconds: float) -> None:
        self.upstream_port = upstream_port
        self.idle_seconds = idle_seconds
        self.port = 0
        self.dropped = 0
        self._background = LoopThread("stale-proxy")
        self._server: asyncio.Server | None = None

    def connection_string(self, account: str, key: str) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};"
            f"TableEndpoint=http://127.0.0.1:{self.port}/{account};"
        )

    def __enter__(self) -> StaleProxy:
        self._background.start(self._listen)
        return self

    def __exit__(self, *exc: object) -> None:
        self._background.stop(self._close)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        """Forward requests and answers; Azurite's own close of the connection behind is not passed on."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        upstream: asyncio.StreamWriter | None = None
        answering: asyncio.Task[None] | None = None

        async def answers(reader: asyncio.StreamReader) -> None:
            nonlocal last
            try:
                while data := await reader.read(65536):
                    last = loop.time()
                    client_writer.write(data)
                    await client_writer.drain()
            except ConnectionError:
                pass

        try:
            while data := await client_reader.read(65536):
                if loop.time() - last > self.idle_seconds:
                    self.dropped += 1
                    return
                last = loop.time()
                if upstream is None or answering is None or answering.done():
                    if upstream is not None:
                        upstream.close()
                    reader, upstream = await asyncio.open_connection("127.0.0.1", self.upstream_port)
                    answering = asyncio.ensure_future(answers(reader))
                upstream.write(data)
                await upstream.drain()
        except ConnectionError:
            pass
        finally:
            if answering is not None:
                answering.cancel()
            if upstream is not None:
                upstream.close()
            client_writer.close()
