"""The Microsoft AI Chat Protocol request: its models, and the parsing that turns a body into one turn."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from chat.engine.ids import MAX_CONVERSATION_ID_CHARS, validate_conversation_id
from chat.engine.items import message as new_message
from chat.engine.turns import TurnInput
from chat.web import json_body
from chat.web.errors import BadRequest, BodyTooLarge

CLIENT_ROLES = ("user", "assistant", "system", "developer", "tool")
SERVER_OWNED_ROLES = ("system", "developer")
# A client that resends its whole conversation sends every message it shows, and the server reads
# only the last. 10,000 messages is 5,000 turns, the longest conversation the history benchmark
# reads; a client past it sends only its new message, since the server keeps the history.
MAX_MESSAGES = 10_000


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: StrictStr = Field(description="`user`, `assistant` or `tool`; `system` and `developer` are refused.")
    content: StrictStr = Field(description="The text; the last message's is at most CHAT_MAX_MESSAGE_CHARS.")


class ChatRequestBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # fail_fast: a list of a million bad messages is one error, not a million built and dropped.
    messages: list[ChatMessage] = Field(
        min_length=1,
        fail_fast=True,
        # Counted before validation, as a 413 (too_many_messages).
        json_schema_extra={"maxItems": MAX_MESSAGES},
        description="Only the last is read, and its role must be `user`: it is the new turn. The server keeps "
        "the history, so earlier messages are ignored; `system` and `developer` messages are refused.",
    )
    session_state: StrictStr | None = Field(
        default=None,
        alias="sessionState",
        description=f"The conversation ID, 1 to {MAX_CONVERSATION_ID_CHARS:,} printable characters; leave it out "
        "to start a conversation with a new ID. An ID not used before starts a conversation with that ID.",
    )
    context: dict[str, Any] | None = Field(default=None, description="Accepted and ignored.")


def parse_chat_request(body: bytes, *, max_message_chars: int, idempotency_key: str | None = None) -> TurnInput:
    document = _json_object(body)
    messages = document.get("messages")
    if isinstance(messages, list) and len(messages) > MAX_MESSAGES:
        raise BodyTooLarge(
            f"The body has {len(messages):,} messages; the limit is {MAX_MESSAGES:,}. "
            "The server keeps the history: send only the new message.",
            code="too_many_messages",
        )
    try:
        request = ChatRequestBody.model_validate(document)
    except ValidationError as e:
        raise BadRequest(_describe(e)) from None
    for message in request.messages:
        if message.role not in CLIENT_ROLES:
            raise BadRequest(f"Unknown role {message.role[:20]!r}; use one of {', '.join(CLIENT_ROLES)}.")
        if message.role in SERVER_OWNED_ROLES:
            raise BadRequest(
                "The server owns the system prompt: send no system or developer messages.",
                code="system_message_not_allowed",
            )
    last = request.messages[-1]
    if last.role != "user":
        raise BadRequest("The last message must have role 'user': it is the new turn.")
    if len(last.content) > max_message_chars:
        raise BodyTooLarge(
            f"The message has {len(last.content):,} characters; the limit is {max_message_chars:,}.",
            code="message_too_large",
        )
    if not last.content.strip():
        raise BadRequest("The last message has no content.", code="empty_message")
    require_text(last.content, "The message")
    conversation_id = request.session_state
    if conversation_id is not None:
        validate_conversation_id(conversation_id)
    return TurnInput(
        inputs=(new_message("user", last.content),), conversation_id=conversation_id, idempotency_key=idempotency_key
    )


def require_text(value: str, what: str) -> None:
    """Reject lone surrogates: they cannot be stored or sent to the model as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{what} contains an unpaired UTF-16 surrogate.", code="invalid_text") from None


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The body is not UTF-8.", code="invalid_encoding") from None
    try:
        document = json_body.loads(text)
    except json_body.NotJson as e:
        raise BadRequest(f"The body is not valid JSON: {e}", code="invalid_json") from None
    except (ValueError, RecursionError):  # ValueError: also an integer of more than 4,300 digits
        raise BadRequest("The body is not valid JSON.", code="invalid_json") from None
    if not isinstance(document, dict):
        raise BadRequest("The body must be a JSON object.")
    return document


def _describe(error: ValidationError) -> str:
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"
