"""Runs a Python script whose sockets may reach loopback addresses only.

    python -m tests.support.loopback_only SCRIPT [ARGS...]

An audit hook refuses, before any packet leaves, every name lookup but of a loopback name and
every connection but to a loopback address: the attempt raises PermissionError in the script and
writes one line starting with REFUSED to stderr, so a test can show that a program it runs (the
bot, with an SDK that knows Entra ID's and Bot Framework's addresses) reached nothing outside.
"""

from __future__ import annotations

import ipaddress
import runpy
import sys
from pathlib import Path
from typing import Any

REFUSED = "REFUSED outside address:"
LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def is_loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host is None or (isinstance(host, str) and host.lower() in LOOPBACK_NAMES):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def guard(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.getaddrinfo":
        host = args[0]
    elif event == "socket.connect" and isinstance(args[1], tuple):  # IP sockets, not Unix ones
        host = args[1][0]
    else:
        return
    if not is_loopback(host):
        print(REFUSED, host, file=sys.stderr, flush=True)
        raise PermissionError(f"{REFUSED} {host}")


def main() -> None:
    script = Path(sys.argv[1]).resolve()
    sys.argv = sys.argv[1:]
    sys.path[0] = str(script.parent)  # as `python SCRIPT` would have it
    sys.addaudithook(guard)
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
