"""Does a bad POST /v1/responses body cost more to refuse than a good one of its size costs to parse?

Times chat.web.openai.requests.parse_response_request on bodies of about 1 MiB: a good one (1,000
user messages), and bad ones built to make a validator do the most work (every item wrong, too
many metadata keys with values of the wrong type, unknown fields, too many items). For contrast it
also times a plain pydantic dict with max_length on the same oversized metadata: pydantic
validates every entry before it counts them, so the parser counts first.

    .venv/bin/python benchmarks/openai_wire_parse.py [--runs 9]

Figures are medians over the runs, in milliseconds, JSON decoding included.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chat.web.openai.errors import ChatError  # noqa: E402
from chat.web.openai.requests import parse_response_request  # noqa: E402

MODEL = "gpt-4o-mini"
TEXT = "A question about the weather in Oslo, asked at some length. " * 16  # ~1 KB


def bodies() -> dict[str, bytes]:
    def body(**fields: object) -> bytes:
        return json.dumps({"model": MODEL, **fields}).encode()

    return {
        "good: 1,000 messages": body(input=[{"role": "user", "content": TEXT}] * 1_000),
        "bad: 1,000 messages, each with a bad role": body(input=[{"role": "nobody", "content": TEXT}] * 1_000),
        "bad: metadata, 40,000 keys, number values": body(metadata={f"key-{i:05}-{'x' * 8}": i for i in range(40_000)}),
        "bad: 35,000 unknown fields": body(**{f"field-{i:05}": "value-" + "x" * 8 for i in range(35_000)}),
        "bad: 20,000 input items": body(input=[{"role": "user", "content": "x" * 20}] * 20_000),
    }


class NaiveMetadata(BaseModel):
    metadata: dict[str, str] = Field(max_length=16)


def parse(raw: bytes) -> str:
    try:
        parse_response_request(raw)
    except ChatError as e:
        return f"{e.status} {e.code}"
    return "accepted"


def naive(raw: bytes) -> str:
    try:
        NaiveMetadata.model_validate(json.loads(raw))
    except ValidationError as e:
        return f"{e.error_count():,} errors"
    return "accepted"


def median_ms(call, raw: bytes, runs: int) -> tuple[float, str]:
    times, outcome = [], ""
    for _ in range(runs):
        start = time.perf_counter()
        outcome = call(raw)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, outcome


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    runs = parser.parse_args().runs
    cases = bodies()
    print(f"{'body':<44} {'KiB':>6} {'ms':>8}  outcome")
    for name, raw in cases.items():
        ms, outcome = median_ms(parse, raw, runs)
        print(f"{name:<44} {len(raw) // 1024:>6} {ms:>8.1f}  {outcome}")
    raw = cases["bad: metadata, 40,000 keys, number values"]
    ms, outcome = median_ms(naive, raw, max(1, runs // 3))
    print(f"{'contrast: a plain pydantic dict, same body':<44} {len(raw) // 1024:>6} {ms:>8.1f}  {outcome}")


if __name__ == "__main__":
    main()
