"""Telemetry and logs: a span per turn with no content, and content in logs only when asked for.

Handlers are called in-process (as the Functions worker calls them) so the spans can be read
from an in-memory exporter.
"""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chat.dependencies import get_dependencies
from chat.engine.history import Conversation
from chat.web import routes
from chat.web.routing import handle
from tests.support.functions import body_of, request

pytestmark = pytest.mark.anyio

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def tracer_provider():
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)
    yield provider


def turn_body(content: str, session: str) -> bytes:
    return json.dumps({"messages": [{"role": "user", "content": content}], "sessionState": session}).encode()


def turn_spans(session_hash: str) -> list:
    return [s for s in EXPORTER.get_finished_spans() if s.attributes["chat.conversation.hash"] == session_hash[:16]]


@pytest.mark.parametrize(("route", "streamed"), [(routes.CHAT, False), (routes.CHAT_STREAM, True)])
async def test_a_span_per_turn_with_model_tokens_and_finish_reason(in_process, route, streamed):
    session = f"span-{uuid.uuid4().hex}"
    secret = f"private words {uuid.uuid4().hex}"
    response = await handle(route, request("POST", f"/api/{route.path}", turn_body(secret, session)), get_dependencies)
    assert response.status_code == 200
    await body_of(response)
    [span] = turn_spans(Conversation("app", session).key)
    attributes = dict(span.attributes)
    assert span.name == "chat.turn"
    assert span.status.is_ok
    assert attributes["chat.streamed"] is streamed
    assert attributes["gen_ai.request.model"] == "chat"
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["gen_ai.usage.input_tokens"] > 0 and attributes["gen_ai.usage.output_tokens"] > 0
    assert span.end_time > span.start_time
    assert secret not in str(attributes) and session not in str(attributes)


async def test_a_failed_turn_is_an_error_span(in_process):
    session = f"span-{uuid.uuid4().hex}"
    response = await handle(
        routes.CHAT, request("POST", "/api/chat", turn_body("busy [[429]]", session)), get_dependencies
    )
    assert response.status_code == 429
    [span] = turn_spans(Conversation("app", session).key)
    assert not span.status.is_ok
    assert span.attributes["error.type"] == "rate_limited"


@pytest.mark.parametrize("log_content", [False, True])
async def test_logs_hold_message_content_only_when_asked(in_process, caplog, log_content):
    in_process.setenv("CHAT_LOG_CONTENT", "true" if log_content else "false")
    secret = f"secret-{uuid.uuid4().hex}"
    caplog.set_level(logging.DEBUG, logger="chat")
    for route in (routes.CHAT, routes.CHAT_STREAM):
        body = turn_body(f"{secret} {route.name}", f"log-{uuid.uuid4().hex}")
        await body_of(await handle(route, request("POST", f"/api/{route.path}", body), get_dependencies))
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "stored" in logged or secret in logged
    assert (secret in logged) is log_content
