"""Loopback stand-ins for Azure OpenAI and a managed identity endpoint, speaking the real protocols.

``StandIns`` runs both aiohttp servers on free ports in a background thread with its own event
loop, so a synchronous pytest fixture can start them and code in the same process can call them::

    with StandIns() as standins:
        monkeypatch.setenv("IDENTITY_ENDPOINT", standins.identity_endpoint)
        monkeypatch.setenv("IDENTITY_HEADER", standins.identity_header)
        ...  # call standins.model_url; then inspect standins.requests(), standins.token_requests()

``python -m standins`` runs the same two servers in the foreground (scripts/run's local model).

    identity.py     the managed identity endpoint: tokens, and the journal both stand-ins keep
    model.py        the chat completions routes, and what they speak (its docstring: the wire,
                    the echo answer, usage, and the directives that drive faults and tool calls)
    credentials.py  the token or key each route takes; completion.py, what the model answers;
    tools.py        function tools checked and called; faults.py, the errors it answers;
    chunks.py       the JSON answer and the streamed chunks; protocol.py, the shared 400s
    background.py   an event loop in a thread, for servers synchronous code starts and stops
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .background import LoopThread
from .credentials import AZURE_RESOURCE
from .identity import TOKEN_PATH, IdentityStandIn
from .model import ModelStandIn

__all__ = ["AZURE_RESOURCE", "AZURE_SCOPE", "StandIns", "environment", "start_server"]

AZURE_SCOPE = AZURE_RESOURCE + "/.default"

# Handlers still running at shutdown (a long [[sleep:S]]) are abandoned after this many seconds.
_SHUTDOWN_TIMEOUT = 0.5


async def start_server(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` (0 picks a free port); return the runner and the bound port."""
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=_SHUTDOWN_TIMEOUT)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner, runner.addresses[0][1]


def environment(*, identity_endpoint: str, identity_header: str, model_url: str, deployment: str) -> dict[str, str]:
    """The environment variables that point the app's keyless Azure path at the stand-ins."""
    return {
        "IDENTITY_ENDPOINT": identity_endpoint,
        "IDENTITY_HEADER": identity_header,
        "AZURE_OPENAI_ENDPOINT": model_url,
        "AZURE_OPENAI_CHAT_DEPLOYMENT": deployment,
    }


class StandIns:
    """Both stand-ins, served from one background thread; a context manager that starts and stops them."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        deployment: str = "chat",
        identity_header: str | None = None,
        openai_api_key: str | None = None,
        chunk_delay: float = 0.0,
    ) -> None:
        self.host = host
        self.identity = IdentityStandIn(identity_header)
        self.model = ModelStandIn(
            self.identity, deployment=deployment, openai_api_key=openai_api_key, chunk_delay=chunk_delay
        )
        self.model_url = ""
        self.identity_url = ""
        self._background = LoopThread("standins")
        self._runners: list[web.AppRunner] = []

    @property
    def deployment(self) -> str:
        return self.model.deployment

    @property
    def identity_header(self) -> str:
        return self.identity.identity_header

    @property
    def openai_api_key(self) -> str:
        return self.model.openai_api_key

    @property
    def identity_endpoint(self) -> str:
        """The full token URL, the value for ``IDENTITY_ENDPOINT``."""
        return self.identity_url + TOKEN_PATH

    def env(self) -> dict[str, str]:
        """``IDENTITY_ENDPOINT``, ``IDENTITY_HEADER``, ``AZURE_OPENAI_ENDPOINT``, ``AZURE_OPENAI_CHAT_DEPLOYMENT``."""
        return environment(
            identity_endpoint=self.identity_endpoint,
            identity_header=self.identity_header,
            model_url=self.model_url,
            deployment=self.deployment,
        )

    def requests(self) -> list[dict[str, Any]]:
        """Every chat request so far, oldest first: route, method, path, query, headers, body, auth,
        grant (resource and client_id of the identity token), status, fault, tool_calls (the calls
        the answer made: id, name, arguments; None if none)."""
        return self.model.journal.entries()

    def token_requests(self) -> list[dict[str, Any]]:
        """Every token request so far, oldest first: method, path, query, headers, header_valid,
        status, resource, client_id, token."""
        return self.identity.journal.entries()

    def clear(self) -> None:
        """Forget recorded requests of both stand-ins and the ``[[fail-first:N]]`` counts."""
        self.model.clear()
        self.identity.clear()

    def start(self) -> StandIns:
        if self._background.running:
            raise RuntimeError("the stand-ins are already running")
        self._background.start(self._serve, self._shutdown)
        return self

    def stop(self) -> None:
        self._background.stop(self._shutdown)

    def __enter__(self) -> StandIns:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        model_runner, model_port = await start_server(self.model.app(), self.host, 0)
        self._runners.append(model_runner)
        identity_runner, identity_port = await start_server(self.identity.app(), self.host, 0)
        self._runners.append(identity_runner)
        self.model_url = f"http://{self.host}:{model_port}"
        self.identity_url = f"http://{self.host}:{identity_port}"

    async def _shutdown(self) -> None:
        while self._runners:
            await self._runners.pop().cleanup()
