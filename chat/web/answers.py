"""The answers of the AI Chat Protocol routes, history and health, as pydantic models.

The handlers build every answer with these models and serialise it with them, and
/api/openapi.json describes the answers with the same models' schemas, so what a route sends and
what its document says cannot drift apart. A field that is sometimes absent (an answer's `usage`,
a stored message's `context`) is left out of the JSON when it is None, as clients have always read
it, and the schema says it is optional rather than nullable.

    ErrorBody        {"error": {"code", "message"}}: every error, and a stream's last line on failure
    ChatAnswer       POST /api/chat
    StreamLine       one line of POST /api/chat/stream: StreamStart, StreamText ..., StreamEnd
    ConversationList GET /api/conversations
    MessageList      GET /api/conversations/{id}/messages
    Health           GET /api/health, and Misconfigured when a setting is wrong
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.responses import Response

from chat.engine.errors import ChatError
from chat.engine.items import Usage

JSON = "application/json"


def _is_none(value: Any) -> bool:
    return value is None


def _is_false(value: Any) -> bool:
    return value is False


class _Answer(BaseModel):
    # Answers are built by the server: a field the model does not know is a bug, never sent. A field
    # with a default is always sent all the same, so the schema says it is required.
    # defer_build: serializers are built at an answer's first use, not when the worker starts.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        serialize_by_alias=True,
        json_schema_serialization_defaults_required=True,
        defer_build=True,
    )


def json_response(answer: BaseModel, *, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """An answer as compact JSON, as the routes have always sent it."""
    return Response(answer.model_dump_json(), status_code=status_code, headers=headers, media_type=JSON)


# -- errors ------------------------------------------------------------------------------------------


class ErrorDetail(_Answer):
    code: str = Field(description="What went wrong, for programs: `invalid_request`, `conversation_not_found`, ...")
    message: str = Field(description="What went wrong, for people; never a trace or a secret.")


class ErrorBody(_Answer):
    error: ErrorDetail


def error_detail(error: ChatError) -> ErrorDetail:
    return ErrorDetail(code=error.code, message=error.message)


def error_body(error: ChatError) -> ErrorBody:
    return ErrorBody(error=error_detail(error))


# -- turns -------------------------------------------------------------------------------------------


class TokenUsage(_Answer):
    prompt_tokens: int
    completion_tokens: int


class AnswerContext(_Answer):
    finish_reason: str | None = Field(description="Why the model stopped: `stop`, `length`, `content_filter`, ...")
    usage: TokenUsage | SkipJsonSchema[None] = Field(
        default=None, exclude_if=_is_none, description="The tokens the answer used, when the model said."
    )
    refusal: bool = Field(
        default=False,
        exclude_if=_is_false,
        description="`true` when the model declined to answer: the content is then its refusal, not an answer. "
        "Left out otherwise.",
    )


def answer_context(finish_reason: str | None, usage: Usage | None, *, refusal: bool = False) -> AnswerContext:
    """Why an answer finished, the tokens it used, and whether it was the model's refusal."""
    tokens = None
    if usage is not None:
        tokens = TokenUsage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)
    return AnswerContext(finish_reason=finish_reason, usage=tokens, refusal=refusal)


class AssistantMessage(_Answer):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatAnswer(_Answer):
    message: AssistantMessage
    session_state: str = Field(
        serialization_alias="sessionState", description="The conversation ID: send it back to continue."
    )
    context: AnswerContext


class RoleDelta(_Answer):
    role: Literal["assistant"] = "assistant"


class ContentDelta(_Answer):
    content: str


class NoDelta(_Answer):
    pass


class StreamStart(_Answer):
    """The first line: who speaks, and in which conversation."""

    delta: RoleDelta = RoleDelta()
    session_state: str = Field(serialization_alias="sessionState")


class StreamText(_Answer):
    """A piece of the answer, as the model wrote it."""

    delta: ContentDelta


class StreamEnd(_Answer):
    """The last line of an answer that was stored."""

    delta: NoDelta = NoDelta()
    context: AnswerContext


# A stream that fails after it started ends with an ErrorBody line instead of a StreamEnd.
StreamLine = StreamStart | StreamText | StreamEnd | ErrorBody


# -- history -----------------------------------------------------------------------------------------


class ConversationEntry(_Answer):
    id: str
    title: str
    created_at: str
    updated_at: str
    message_count: int


class ConversationList(_Answer):
    conversations: list[ConversationEntry]
    next: str | None = Field(description="The cursor of the next page; null on the last.")


class MessageEntry(_Answer):
    role: Literal["user", "assistant", "system", "developer"]
    content: str
    created_at: str
    context: AnswerContext | SkipJsonSchema[None] = Field(
        default=None, exclude_if=_is_none, description="On the model's answers: why it finished, its tokens."
    )


class FunctionCallEntry(_Answer):
    role: Literal["assistant"] = "assistant"
    type: Literal["function_call"] = "function_call"
    call_id: str
    name: str
    arguments: str
    created_at: str
    context: AnswerContext | SkipJsonSchema[None] = Field(default=None, exclude_if=_is_none)


class FunctionCallOutputEntry(_Answer):
    role: Literal["tool"] = "tool"
    type: Literal["function_call_output"] = "function_call_output"
    call_id: str
    content: str
    created_at: str
    context: AnswerContext | SkipJsonSchema[None] = Field(default=None, exclude_if=_is_none)


class CompactionEntry(_Answer):
    role: Literal["assistant"] = "assistant"
    type: Literal["compaction"] = "compaction"
    content: str = Field(description="The model's summary of the conversation before it, sent in its place.")
    created_at: str


class MessageList(_Answer):
    session_state: str = Field(serialization_alias="sessionState")
    messages: list[MessageEntry | FunctionCallEntry | FunctionCallOutputEntry | CompactionEntry] = Field(
        description="Chronological; pages go back from the newest."
    )
    next: str | None = Field(description="The cursor of the page of older messages; null on the oldest.")


# -- health ------------------------------------------------------------------------------------------


class ModelKind(_Answer):
    kind: Literal["azure_openai", "openai_compatible"]


class HealthChecks(_Answer):
    storage: str = Field(description="`ok`, or the code of the error storage answered with.")
    model: str = Field(description="`ok`, or the code of the error the model endpoint answered with.")


class HealthWarning(_Answer):
    code: str = Field(description="`client_principal_ignored`: signed-in users share one owner.")
    message: str = Field(description="What is wrong, and the settings that put it right.")


class Health(_Answer):
    status: Literal["ok", "degraded"]
    model: ModelKind
    checks: HealthChecks
    missing_tables: list[str] = Field(
        default_factory=list,
        description="The storage tables that do not exist; the app creates them again on their next use.",
    )
    warnings: list[HealthWarning] = Field(
        default=[], description="What serves requests but is likely a mistake of the deployment; empty when none."
    )


class Misconfigured(_Answer):
    status: Literal["misconfigured"] = "misconfigured"
    error: ErrorDetail
