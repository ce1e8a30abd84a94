"""Free loopback ports, waiting for a process to listen on one, and stopping it."""

from __future__ import annotations

import socket
import subprocess
import time

START_TIMEOUT_SECONDS = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} in time")


def stop_process(process: subprocess.Popen | None) -> None:
    """Terminate a process that still runs, and wait for it to exit."""
    if process is not None and process.poll() is None:
        process.terminate()
        process.wait(timeout=30)
