"""Where a serving process's CPU goes: py-spy's samples of it, split by who does the work.

`py-spy record --format raw --full-filenames --gil` writes one line per distinct stack, root
first, frames `function (file:line)` joined by `;`, then the number of samples. With `--gil` only
the thread holding the GIL is sampled, so the samples follow the process's Python CPU, not its
waiting; time in C code that lets go of the GIL (a socket's send) is not seen, so the split is
of the CPU the samples saw, and the bench scales it to the CPU /proc measured. Each sample goes
to the package nearest its leaf that has a side of its own:

    storage SDK   azure-data-tables, azure-core (and aiohttp, its transport)
    openai SDK    openai and its HTTP client (httpx, httpcore), azure-identity's token provider
    our code      chat/ (or the forwarder)
    framework     uvicorn, Starlette, and what is left: the event loop, the interpreter's own

Shared helpers with no side (pydantic, anyio, h11, json, logging) are skipped on the way up, so
pydantic under the openai SDK counts as the SDK's, and under chat/ as ours. A sample with no side
on its stack but aiohttp (a storage response arriving, from the event loop) is the storage
SDK's, and one with only httpcore the openai SDK's.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

STORAGE, OPENAI, OURS, FRAMEWORK = "storage SDK", "openai SDK", "our code", "framework"
CATEGORIES = (STORAGE, OPENAI, OURS, FRAMEWORK)
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*):(?P<line>\d+)\)$")


def _sides(root: Path) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return (
        (STORAGE, ("/azure/data/tables/", "/azure/core/")),
        (OPENAI, ("/openai/", "/httpx/", "/httpcore/", "/httpx2/", "/httpcore2/", "/azure/identity/")),
        (OURS, (f"{root}/chat/", f"{root}/benchmarks/bench/forwarder.py")),
        (FRAMEWORK, ("/starlette/", "/uvicorn/")),
    )


_TRANSPORTS = ((STORAGE, ("/aiohttp/",)), (OPENAI, ("/httpcore/", "/httpcore2/", "/httpx/", "/httpx2/")))


def parse(text: str) -> list[tuple[list[str], int]]:
    """The stacks of a raw py-spy file (file names only, leaf last) and their sample counts."""
    stacks = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks.append((stack.split(";"), int(count)))
    return stacks


def _file(frame: str) -> str:
    found = _FRAME.match(frame)
    return found.group("file") if found else ""


def classify(frames: list[str], root: Path) -> str:
    """The side of one sample: the first frame from the leaf that belongs to one."""
    files = [_file(frame) for frame in frames]
    sides = _sides(root)
    for file in reversed(files):
        for side, markers in sides:
            if any(marker in file for marker in markers):
                return side
    for side, markers in _TRANSPORTS:
        if any(marker in file for file in files for marker in markers):
            return side
    return FRAMEWORK


def split(text: str, root: Path, *, top: int = 12) -> dict:
    """Samples by side (fractions), and the hottest functions: ours and the storage SDK's (each
    with what it calls, in the samples of its side), and any (in themselves alone)."""
    by_side: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    storage: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for frames, count in parse(text):
        total += count
        side = classify(frames, root)
        by_side[side] += count
        leaves[_function(frames[-1], root)] += count
        for name in {_function(f, root) for f in frames if f"{root}/chat/" in _file(f)}:
            ours[name] += count
        if side == STORAGE:
            for name in {_function(f, root) for f in frames if _is_storage(_file(f))}:
                storage[name] += count
    if not total:
        return {
            "samples": 0,
            "fractions": dict.fromkeys(CATEGORIES, 0.0),
            "ours_inclusive": [],
            "storage_inclusive": [],
            "self": [],
        }
    return {
        "samples": total,
        "fractions": {side: round(by_side[side] / total, 4) for side in CATEGORIES},
        "ours_inclusive": [[name, round(n / total, 4)] for name, n in ours.most_common(top)],
        "storage_inclusive": [[name, round(n / total, 4)] for name, n in storage.most_common(top)],
        "self": [[name, round(n / total, 4)] for name, n in leaves.most_common(top)],
    }


def _is_storage(file: str) -> bool:
    return any(marker in file for marker in ("/azure/data/tables/", "/azure/core/", "/aiohttp/"))


def _function(frame: str, root: Path) -> str:
    """`function (chat/web/chat.py)`: the file as its package names it (the project's, a site
    package's or the standard library's), the line left out, so a function's samples add up."""
    found = _FRAME.match(frame)
    if not found:
        return frame
    return f"{found.group('function')} ({_short(found.group('file'), root)})"


def _short(file: str, root: Path) -> str:
    for marker in ("/site-packages/", "/lib/python3."):
        if marker in file:
            tail = file.split(marker, 1)[1]
            return tail if marker == "/site-packages/" else tail.split("/", 1)[1]
    return file.removeprefix(f"{root}/")
