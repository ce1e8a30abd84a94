"""schemathesis against the app's own /api/openapi.json, on a server of its own (Azurite, the model
stand-in): every operation of both doors, from the document's examples, its edges (coverage), random
bodies (fuzzing) and chains of operations (stateful). It fails on a server error, an answer whose status,
content type or body the document does not give, or a malformed request that is not refused.

The run here is bounded and seeded, so it is the same run each time; scripts/fuzz runs a longer one
with a fresh seed (FUZZ_MAX_EXAMPLES, FUZZ_SEED)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.servers import AppServer, app_env

pytestmark = pytest.mark.e2e

CONFIG = Path(__file__).parent / "fuzz" / "schemathesis.toml"
# Every method the document gives but HEAD, which schemathesis does not send (a HEAD is its GET's answer
# without a body: tests/test_health_e2e.py).
METHODS = {"get", "put", "post", "delete", "options", "patch", "trace"}
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)


@pytest.fixture(scope="module")
def fuzzed(standins, azurite):
    """A server of its own: the fuzzer's turns spend a quota and fill a list no other test should see."""
    instance = AppServer(app_env(standins, azurite.connection_string)).start()
    yield instance
    instance.stop()


def test_schemathesis_finds_nothing_wrong(fuzzed, tmp_path):
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--no-color",
        "--config-file",
        str(CONFIG),
        "run",
        f"{fuzzed.url}/api/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        os.environ.get("FUZZ_MAX_EXAMPLES", "40"),
        "--seed",
        os.environ.get("FUZZ_SEED", "20261207"),
        # One worker: schemathesis's own generator has been seen to fail in threads (a SystemError from
        # Python's ast), which is its fault, not the app's.
        "--workers",
        "1",
        "--request-timeout",
        "30",
    ]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    summary = run.stdout[-6000:]
    assert run.returncode == 0, summary
    generated = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert generated, summary
    assert int(generated[1]) > 500 and generated[1] == generated[2], summary
    tested = re.search(r"Tested: (\d+)", run.stdout)
    assert tested and int(tested[1]) == operations(fuzzed.url), summary


def operations(url: str) -> int:
    with urllib.request.urlopen(f"{url}/api/openapi.json") as answer:
        paths = json.load(answer)["paths"]
    return sum(1 for item in paths.values() for method in item if method in METHODS)
