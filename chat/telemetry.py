"""Telemetry: one span per turn, exported to Application Insights when it is configured.

The span names the conversation only by a hash, and carries the model, token counts, finish
reason and outcome; its duration is the turn's latency. Message content is never put in spans,
and in logs only with CHAT_LOG_CONTENT=true. Without APPLICATIONINSIGHTS_CONNECTION_STRING the
OpenTelemetry API is a no-op.
"""

from __future__ import annotations

import logging
import os

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from chat.engine.errors import ChatError
from chat.settings import TelemetrySettings

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("chat")
_configured = False


def configure(settings: TelemetrySettings | None) -> None:
    """Send traces, metrics and logs to Application Insights; once per worker."""
    global _configured
    if settings is None or _configured:
        return
    from azure.monitor.opentelemetry import configure_azure_monitor

    # Describe the app from App Service's (and so Functions') environment variables only: the VM
    # detector asks the instance metadata endpoint, which Functions does not serve.
    os.environ.setdefault("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "azure_app_service")

    options = {}
    if settings.entra_auth:
        from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

        options["credential"] = (
            ManagedIdentityCredential(client_id=settings.client_id) if settings.client_id else DefaultAzureCredential()
        )
    configure_azure_monitor(connection_string=settings.connection_string, logger_name="chat", **options)
    _configured = True


class TurnSpan:
    """The span of one turn, from the request to the stored answer."""

    def __init__(self, conversation_hash: str, model: str, *, streamed: bool) -> None:
        self._span = _tracer.start_span(
            "chat.turn",
            kind=trace.SpanKind.INTERNAL,
            attributes={
                "chat.conversation.hash": conversation_hash[:16],
                "chat.streamed": streamed,
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": model,
            },
        )

    def succeed(self, *, finish_reason: str | None, usage, replayed: bool = False) -> None:
        span = self._span
        span.set_attribute("chat.replayed", replayed)
        if finish_reason:
            span.set_attribute("gen_ai.response.finish_reasons", [finish_reason])
        if usage is not None:
            span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        span.set_status(Status(StatusCode.OK))
        span.end()

    def fail(self, error: BaseException) -> None:
        code = error.code if isinstance(error, ChatError) else type(error).__name__
        self._span.set_attribute("error.type", code)
        self._span.set_status(Status(StatusCode.ERROR, code))
        self._span.end()


class Tracer:
    """The engine's tracer (chat.engine.ports.Tracer): a span per turn."""

    def turn(self, conversation_key: str, model: str, *, streamed: bool) -> TurnSpan:
        return TurnSpan(conversation_key, model, streamed=streamed)
