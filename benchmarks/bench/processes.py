"""The processes a run starts: the servers under uvicorn (the app, the forwarder), the stand-ins,
and py-spy; what the servers use, read from /proc."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.ports import free_port, stop_process, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROFILE_RATE = 250  # py-spy samples a second


def base_env() -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(ROOT),
    }


class Service:
    """A server under uvicorn, as scripts/run starts the app: the app, or the forwarder."""

    def __init__(self, name: str, module: str, env: dict[str, str], *, workers: int = 1) -> None:
        self.name = name
        self.module = module
        self.env = env
        self.workers = workers  # uvicorn's worker processes: more than one, a supervisor starts them
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        # What the server logs (its warnings: a storage request that failed, a list update lost).
        handle, name = tempfile.mkstemp(prefix="bench-", suffix=".log")
        os.close(handle)
        self.log = Path(name)
        self._log_read = 0

    def start(self) -> Service:
        command = [sys.executable, "-m", "uvicorn", self.module, "--host", "127.0.0.1", "--port", str(self.port)]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "--no-access-log", "--log-level", "warning"], cwd=ROOT, env=self.env, stderr=log
            )
        return self

    def new_log_lines(self) -> list[str]:
        """What the server logged since the last call."""
        with self.log.open("rb") as log:
            log.seek(self._log_read)
            text = log.read()
        self._log_read += len(text)
        return text.decode(errors="replace").splitlines()

    def wait(self) -> Service:
        assert self.process is not None
        wait_for_port(self.port, self.process, self.name)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu(self) -> float:
        """CPU seconds the server has used: utime + stime of /proc/<pid>/stat, every thread's, and
        of its worker processes' when it has them."""
        return sum(_cpu(pid) for pid in (self.pid, *_children(self.pid)))

    def memory(self) -> dict[str, float]:
        """Peak and current resident memory, MiB: VmHWM and VmRSS of /proc/<pid>/status."""
        found = dict(re.findall(r"^(VmHWM|VmRSS):\s+(\d+) kB", Path(f"/proc/{self.pid}/status").read_text(), re.M))
        return {"peak_mib": round(int(found["VmHWM"]) / 1024, 1), "rss_mib": round(int(found["VmRSS"]) / 1024, 1)}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def remove_log(self) -> None:
        self.log.unlink(missing_ok=True)


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


class StandInProcess:
    """The model and managed-identity stand-ins in a process of their own, as scripts/run runs them."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.env: dict[str, str] = {}

    def start(self) -> StandInProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "standins", "--host", "127.0.0.1"],
            cwd=ROOT,
            env=base_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        while len(self.env) < 4:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("the stand-ins exited before they said where they listen")
            name, _, value = line.strip().partition("=")
            self.env[name] = value
        return self

    @property
    def model_url(self) -> str:
        return self.env["AZURE_OPENAI_ENDPOINT"]

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


def start_py_spy(binary: str, pid: int, output: Path) -> subprocess.Popen:
    """py-spy sampling a running process until interrupted, without pausing it: the raw stacks of
    the thread that holds the GIL, so the samples follow the process's Python CPU, not its waiting
    (a thread blocked in epoll or on a queue holds no GIL)."""
    command = [binary, "record", "--pid", str(pid), "--rate", str(PROFILE_RATE), "--format", "raw", "--gil"]
    command.append("--full-filenames")
    return subprocess.Popen(
        [*command, "--nonblocking", "--output", str(output)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
