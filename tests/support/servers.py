"""The app under uvicorn (chat.local), as scripts/run serves it, in a process of its own with a
clean environment, so nothing of the developer's machine (an Azure login, a real endpoint) leaks
in, and its credential can only reach the identity stand-in."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from standins import StandIns
from tests.support import ROOT
from tests.support.api import SERVER_KEEP_ALIVE_SECONDS
from tests.support.ports import free_port, stop_process, wait_for_port


class AppServer:
    """The app on a free loopback port."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = env
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen | None = None

    def start(self) -> AppServer:
        return self.launch().wait()

    def launch(self) -> AppServer:
        """Start the process and return at once; wait() for it to listen."""
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "chat.local:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--timeout-keep-alive",
                str(SERVER_KEEP_ALIVE_SECONDS),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=self.env,
        )
        return self

    def wait(self) -> AppServer:
        assert self._process is not None, "launch() first"
        wait_for_port(self.port, self._process, "the app")
        return self

    @property
    def pid(self) -> int:
        """The server's process ID (a benchmark reads its CPU time)."""
        assert self._process is not None, "launch() first"
        return self._process.pid

    def stop(self) -> None:
        stop_process(self._process)
        self._process = None


def start_all(servers: list[AppServer]) -> list[AppServer]:
    """Launch every server before waiting for any, so their start-ups overlap; stop them all if
    one does not come up."""
    try:
        for server in servers:
            server.launch()
        for server in servers:
            server.wait()
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


def app_env(standins: StandIns, connection_string: str | None, **overrides: str) -> dict[str, str]:
    """A clean environment: only what the app needs, the credential pointed at the stand-in."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(ROOT),
        "AZURE_OPENAI_ENDPOINT": standins.model_url,
        "AZURE_OPENAI_CHAT_DEPLOYMENT": standins.deployment,
        "IDENTITY_ENDPOINT": standins.identity_endpoint,
        "IDENTITY_HEADER": standins.identity_header,
        "CHAT_STORAGE_CONNECTION_STRING": connection_string,
        "CHAT_TABLE_PREFIX": "t" + uuid.uuid4().hex[:12],
        "CHAT_SYSTEM_PROMPT": "You are the test assistant.",
        "CHAT_MODEL_TIMEOUT_SECONDS": "3",
        "CHAT_MODEL_MAX_RETRIES": "1",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}
