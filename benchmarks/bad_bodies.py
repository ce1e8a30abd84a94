"""What does a bad chat body cost? Time and peak memory of parsing the worst bodies beside good ones.

Builds each body at about the same size (by default the 16 MiB body cap), writes it to a file,
and parses it with chat.web.chat_protocol.parse_chat_request in a fresh Python process, so no body's
leftovers raise another's peak. The process reports how long the parse took and how far its peak
resident memory (VmHWM, reset just before the parse) rose above what it held once the body was
read: the memory the parse itself needed. Each body is parsed in `--runs` processes; the table
gives the median time and the highest memory.

    .venv/bin/python benchmarks/bad_bodies.py [--size 16777216] [--runs 3] [--only issue,nesting]

Figures are for the parse alone. Serving a request adds the body as read (up to 16 MiB, twice
while its chunks are joined) and nothing that grows with what the body holds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chat.web.chat_protocol import MAX_JSON_VALUES, MAX_MESSAGES  # noqa: E402

PROSE = "The quick brown fox jumps over the lazy dog, then rests: twice. "  # a comma and a colon per 64 characters


def _fill(head: bytes, unit: bytes, tail: bytes, size: int) -> bytes:
    return head + unit * max(0, (size - len(head) - len(tail)) // len(unit)) + tail


def _conversation(size: int, content: str) -> bytes:
    """A whole conversation resent, as JSON.stringify sends it (UTF-8, not escaped): messages of
    `content` taking turns, then a short new turn; at most MAX_MESSAGES messages in all."""
    last = {"role": "user", "content": "And now?"}
    one = len(json.dumps({"role": "assistant", "content": content}, ensure_ascii=False).encode()) + 2
    count = min(MAX_MESSAGES - 1, max(0, (size - 64) // one))
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": content} for i in range(count)]
    return json.dumps({"messages": [*history, last], "sessionState": "benchmark"}, ensure_ascii=False).encode()


def _turn_then(size: int, key: str, head: bytes, unit: bytes, tail: bytes) -> bytes:
    """A valid turn whose `key` is the filler: the shape a bad body hides behind."""
    start = b'{"messages": [{"role": "user", "content": "hi"}], "' + key.encode() + b'": '
    return _fill(start + head, unit, tail + b"}", size)


def _distinct_keys(size: int) -> bytes:
    start, end = b'{"messages": [{"role": "user", "content": "hi"}], "context": {', b"}}"
    items, length = [], len(start) + len(end)
    while True:
        item = b'"%x":0' % len(items)
        if length + len(item) + 1 > size:
            return start + b",".join(items) + end
        items.append(item)
        length += len(item) + 1


BODIES: dict[str, tuple[str, Callable[[int], bytes]]] = {
    "good-long": (
        "good: a resent conversation of 100,000-character messages of prose",
        lambda size: _conversation(size, (PROSE * 1_600)[:100_000]),
    ),
    "good-many": (
        "good: a resent conversation of 10,000 messages (the message bound)",
        lambda size: _conversation(size, (PROSE * 30)[: max(1, size // MAX_MESSAGES - 40)]),
    ),
    "good-emoji": (
        "good: as good-long, an emoji in each message (4 bytes a character in memory)",
        lambda size: _conversation(size, "😀" + (PROSE * 1_600)[: 100_000 - 1]),
    ),
    "issue": (
        'bad: {"messages": [{}, {}, ...]}, the body of issue 8',
        lambda size: _fill(b'{"messages": [', b"{}, ", b"{}]}", size),
    ),
    "lists": (
        "bad: a context of empty lists",
        lambda size: _turn_then(size, "context", b'{"a": [', b"[],", b"[]]}"),
    ),
    "keys": ("bad: a context of distinct keys", _distinct_keys),
    "strings": (
        "bad: an ignored message of one-character strings",
        lambda size: _fill(
            b'{"messages": [{"role": "user", "content": "x", "junk": [',
            b'"a",',
            b'"a"]}, {"role": "user", "content": "hi"}]}',
            size,
        ),
    ),
    "under": (
        "bad: empty objects just under the value bound, padded by one long string",
        lambda size: _fill(
            b'{"messages": [{"role": "user", "content": "hi"}], "context": {"a": ['
            + b"{}," * (MAX_JSON_VALUES - 20)
            + b'{}], "pad": "',
            b"x",
            b'"}}',
            size,
        ),
    ),
    "messages": (
        "bad: 10,001 messages, padded by one long string",
        lambda size: _fill(
            b'{"messages": [' + b'{"role": "user", "content": "hi"},' * MAX_MESSAGES + b'{"role": "user", "content": "',
            b"x",
            b'"}]}',
            size,
        ),
    ),
    "nesting": (
        "bad: nesting as deep as the body is long",
        lambda size: _turn_then(size, "context", b'{"a": ', b"[", b"}"),
    ),
    "numbers": (
        "bad: a context of numbers",
        lambda size: _turn_then(size, "context", b'{"n": [', b"1.5,", b"1.5]}"),
    ),
    "nulls": (
        "bad: a context of nulls (shared objects, not counted)",
        lambda size: _turn_then(size, "context", b'{"n": [', b"null,", b"null]}"),
    ),
    "integer": (
        "bad: an integer as long as the body",
        lambda size: _turn_then(size, "context", b'{"n": ', b"9", b"}"),
    ),
    "float": (
        "bad: a fraction as long as the body",
        lambda size: _turn_then(size, "context", b'{"n": 0.', b"1", b"}"),
    ),
    "escapes": (
        'bad: an ignored message of escaped quotes, \\"\\"\\"...',
        lambda size: _fill(
            b'{"messages": [{"role": "assistant", "content": "',
            b'\\"',
            b'"}, {"role": "user", "content": "hi"}]}',
            size,
        ),
    ),
    "unterminated": (
        "bad: a string of escaped commas that never ends",
        lambda size: _fill(b'{"messages": "', b"\\,", b"", size),
    ),
}


def child(path: str) -> None:
    from chat.engine.errors import ChatError
    from chat.web.chat_protocol import parse_chat_request

    body = Path(path).read_bytes()
    before = _reset_peak()
    start = time.perf_counter()
    try:
        parse_chat_request(body, max_message_chars=100_000)
        outcome = "parsed"
    except ChatError as e:
        outcome = f"{e.status} {e.code}"
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "rss_mib": (_peak() - before) / 1024, "outcome": outcome}))


def _reset_peak() -> int:
    """The resident memory now, in KiB, with the peak reset to it where Linux allows (otherwise
    the peak so far stays, and the figure shows only what the parse needed beyond it)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak() -> int:
    try:
        return _status("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def measure(body: bytes, runs: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        f.write(body)
    try:
        results = [
            json.loads(
                subprocess.run(
                    [sys.executable, __file__, "--child", f.name],
                    capture_output=True,
                    text=True,
                    check=True,
                    env={**os.environ, "PYTHONHASHSEED": "0"},
                ).stdout
            )
            for _ in range(runs)
        ]
    finally:
        os.unlink(f.name)
    return {
        "seconds": statistics.median(r["seconds"] for r in results),
        "rss_mib": max(r["rss_mib"] for r in results),
        "outcome": results[0]["outcome"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=16 * 1024 * 1024, help="bytes per body (16 MiB)")
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per body")
    parser.add_argument("--only", default="", help="comma-separated body names")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    names = [n for n in args.only.split(",") if n] or list(BODIES)
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, bodies of about {args.size:,} bytes, {args.runs} runs"
    )
    print()
    print("| body | bytes | outcome | time (s) | peak memory (MiB) |")
    print("| --- | --- | --- | --- | --- |")
    for name in names:
        what, build = BODIES[name]
        body = build(args.size)
        result = measure(body, args.runs)
        print(
            f"| `{name}`: {what} | {len(body):,} | {result['outcome']} | "
            f"{result['seconds']:.3f} | {result['rss_mib']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
