"""Telemetry leaves the app keylessly: spans reach an Application Insights ingestion stand-in with a
managed identity token, and carry no message content.

The app's telemetry set-up runs in a process of its own (OpenTelemetry is configured once per
process), pointed at a loopback HTTPS endpoint that records what the Azure Monitor exporter
sends; HTTPS because the exporter, like every Azure SDK client, sends a bearer token over TLS only.
Live metrics, statsbeat and the SDK's settings control plane, which would call other endpoints,
are pointed at loopback or off.

On a busy machine an export can take a while or time out: the child process flushes, asks the
stand-in whether the span arrived and, if not, sends another (a few times at most); the test then
waits (with a deadline) for a span to be recorded, never for a fixed time.
"""

from __future__ import annotations

import gzip
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from tests.support import ROOT
from tests.support.tls import self_signed_certificate

EMIT = """
import json
import logging
import urllib.request

from opentelemetry import trace
from chat import telemetry
from chat.settings import Settings
from chat.engine.items import Usage

# The exporter says in its log why an export failed; the test prints it when no span arrives.
logging.basicConfig(level=logging.WARNING)
telemetry.configure(Settings.from_env().telemetry)
for attempt in range(1, ATTEMPTS + 1):
    span = telemetry.TurnSpan("ab" * 32, "chat", streamed=True)
    span.succeed(finish_reason="stop", usage=Usage(prompt_tokens=11, completion_tokens=7))
    if not trace.get_tracer_provider().force_flush(timeout_millis=120_000):
        raise SystemExit("the span was not exported within the flush deadline")
    # An export that failed (on a loaded machine a token or ingestion call can pass the exporter's
    # 10 s timeout) is kept on disk for a minute before it is sent again: send a new span instead.
    with urllib.request.urlopen(RECEIVED) as answer:
        if json.load(answer)["spans"]:
            break
    logging.warning("attempt %d: no span reached ingestion yet", attempt)
else:
    raise SystemExit("no span reached ingestion")
"""
ATTEMPTS = 5
SPAN_DEADLINE_SECONDS = 60


class Ingestion(BaseHTTPRequestHandler):
    """Records each POST and answers as the ingestion endpoint does when it accepts everything."""

    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        Ingestion.received.append({"path": self.path, "headers": dict(self.headers), "body": body.decode()})
        answer = json.dumps({"itemsReceived": 1, "itemsAccepted": 1, "errors": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def do_GET(self) -> None:
        """How many turn spans arrived so far: the child asks before it sends another."""
        answer = json.dumps({"spans": len(_turn_spans()[1])}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def ingestion(tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ingestion)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    Ingestion.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/", cert
    server.shutdown()
    server.server_close()


def test_a_turn_span_reaches_application_insights_with_a_managed_identity_token(ingestion, standins, azurite, tmp_path):
    endpoint, cert = ingestion
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        # The exporter keeps telemetry it could not send under the temp folder and sends it with the
        # next success: a folder of this test's own, so nothing of an earlier run arrives here.
        "TMPDIR": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "REQUESTS_CA_BUNDLE": str(cert),
        "SSL_CERT_FILE": str(cert),
        **standins.env(),
        "CHAT_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "APPLICATIONINSIGHTS_CONNECTION_STRING": (
            "InstrumentationKey=00000000-0000-0000-0000-000000000001;"
            f"IngestionEndpoint={endpoint};LiveEndpoint={endpoint}"
        ),
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD",
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        # The exporter would otherwise poll its settings service on the internet.
        "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
        # Azure Monitor's default sampler keeps about 5 traces a second, measured from when it was
        # made: a span ended a moment after start-up reads as a burst and is mostly dropped. Every span.
        "OTEL_TRACES_SAMPLER": "microsoft.fixed_percentage",
        "OTEL_TRACES_SAMPLER_ARG": "1.0",
    }
    before = len(standins.token_requests())
    script = f"ATTEMPTS = {ATTEMPTS}\nRECEIVED = {endpoint + 'received'!r}\n" + EMIT
    child = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, timeout=300, capture_output=True, text=True
    )
    assert child.returncode == 0, child.stderr[-4000:]

    tracks, spans = _turn_spans()
    deadline = time.monotonic() + SPAN_DEADLINE_SECONDS
    while not spans and time.monotonic() < deadline:
        time.sleep(0.1)  # a request the exporter gave up on may still be being read by the server
        tracks, spans = _turn_spans()
    # One span per attempt at most; a span whose export timed out may still arrive beside a later one.
    assert 1 <= len(spans) <= ATTEMPTS, child.stderr[-4000:]
    for span in spans:
        properties = span["data"]["baseData"]["properties"]
        assert properties["chat.conversation.hash"] == "ab" * 8
        assert properties["gen_ai.request.model"] == "chat"
        assert properties["gen_ai.usage.input_tokens"] == "11" and properties["gen_ai.usage.output_tokens"] == "7"
    assert all(r["headers"]["Authorization"].startswith("Bearer ") for r in tracks)
    grants = standins.token_requests()[before:]
    assert any(g["resource"] and "monitor.azure.com" in g["resource"] and g["status"] == 200 for g in grants)


def _turn_spans() -> tuple[list[dict], list[dict]]:
    tracks = [r for r in list(Ingestion.received) if r["path"].endswith("/track")]
    spans = [
        item
        for r in tracks
        for line in r["body"].splitlines()
        if line.strip()
        for item in (json.loads(line) if line.lstrip().startswith("[") else [json.loads(line)])
        if item.get("data", {}).get("baseData", {}).get("name") == "chat.turn"
    ]
    return tracks, spans
