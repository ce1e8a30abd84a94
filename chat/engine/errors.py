"""Errors, each carrying what a client may see: an HTTP status, a code and a message.

    ChatError                       base: status, code, safe message (never a secret or a trace)
    ├── InvalidRequest          400 the body, a header or a parameter is malformed
    │   └── ContentFiltered     400 the model's content filter refused the prompt
    ├── Unauthenticated         401 a trusted client principal is missing or malformed
    ├── OriginNotAllowed        403 a CORS preflight from an origin not in CHAT_ALLOWED_ORIGINS
    ├── ConversationNotFound    404 unknown, or another owner's: existence is never revealed; also
    │                               a turn whose conversation was deleted while it was in flight
    ├── NotFound                404 a response or an item that is not there, or another owner's
    ├── RouteNotFound           404 a path no route matches (an empty, `.` or `..` segment included)
    ├── MethodNotAllowed        405 with the methods the route allows
    ├── ConversationBusy        409 too many concurrent turns on one conversation; retry
    ├── DuplicateRequest        409 a streamed answer lost to a concurrent request with its Idempotency-Key
    ├── PayloadTooLarge         413 a message or body over the configured limit
    ├── UnsupportedMediaType    415 a body not sent as application/json
    ├── IdempotencyKeyReused    422 an Idempotency-Key sent again with a different message
    ├── RateLimited             429 upstream or quota; carries Retry-After seconds
    ├── ModelUnavailable        502/503 the model failed, refused our credential, or cut its answer
    ├── AnswerTooLarge          502 an answer too large to store in one transaction
    ├── ModelTimeout            504 the model did not answer in time
    ├── StorageUnavailable      503 Table Storage failed, is unreachable or did not answer in time
    │   └── TableMissing        503 a table does not exist (deleted, or being deleted); names it
    └── ConfigurationError      503 a setting is missing or contradictory; names the variable

ContextTooLong is internal: the service shrinks the window and retries once before it lets a
client see it (as a 400), unless the request disabled truncation. TurnConflict is internal to
the store: another turn, or a delete, changed the conversation's head first; the service reads
it again and renumbers, or, after a delete, answers ConversationNotFound. TurnOutcomeUnknown is
internal too: the turn's transaction was sent but its answer never came (the connection dropped,
or storage answered a server error), so it may be stored; the service reads the conversation
again to learn which, and answers what was stored.
"""

from __future__ import annotations


class ChatError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    @property
    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequest(ChatError):
    status = 400
    code = "invalid_request"


class ContentFiltered(InvalidRequest):
    code = "content_filter"


class ContextTooLong(InvalidRequest):
    code = "context_length_exceeded"


class Unauthenticated(ChatError):
    status = 401
    code = "unauthenticated"


class OriginNotAllowed(ChatError):
    status = 403
    code = "origin_not_allowed"


class ConversationNotFound(ChatError):
    status = 404
    code = "conversation_not_found"

    def __init__(self, message: str = "No such conversation.") -> None:
        super().__init__(message)


class NotFound(ChatError):
    """404 for a response or an item that is not there (or is another owner's); `param` names the
    field of the request that named it, if one did."""

    status = 404

    def __init__(self, message: str, *, code: str, param: str | None = None) -> None:
        super().__init__(message, code=code)
        self.param = param


class RouteNotFound(ChatError):
    status = 404
    code = "not_found"

    def __init__(self) -> None:
        super().__init__("No such route.")


class MethodNotAllowed(ChatError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, method: str, allowed: tuple[str, ...]) -> None:
        super().__init__(f"{method} is not allowed here; use {', '.join(allowed)}.")
        self.allowed = allowed

    @property
    def headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allowed)}


class ConversationBusy(ChatError):
    status = 409
    code = "conversation_busy"

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class DuplicateRequest(ChatError):
    status = 409
    code = "duplicate_request"


class PayloadTooLarge(ChatError):
    status = 413
    code = "too_large"


class UnsupportedMediaType(ChatError):
    status = 415
    code = "unsupported_media_type"


class IdempotencyKeyReused(ChatError):
    status = 422
    code = "idempotency_key_reused"


class RateLimited(ChatError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, retry_after)

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ModelUnavailable(ChatError):
    status = 502
    code = "model_error"


class AnswerTooLarge(ChatError):
    status = 502
    code = "answer_too_large"


class ModelTimeout(ChatError):
    status = 504
    code = "model_timeout"


class StorageUnavailable(ChatError):
    status = 503
    code = "storage_unavailable"


class TableMissing(StorageUnavailable):
    """A table the app uses does not exist: its next use creates it again (in Azure, once a
    deletion has finished; an app refused Create Table waits for the deployment to make it)."""

    def __init__(self, table: str, *, being_deleted: bool = False) -> None:
        state = "is being deleted" if being_deleted else "does not exist"
        super().__init__(f"Storage table {table} {state}; the app creates it again on its next use.")
        self.table = table


class ConfigurationError(ChatError):
    status = 503
    code = "configuration_error"


class TurnConflict(Exception):
    """Another turn, or a delete, changed the conversation's head before this turn's transaction (internal)."""


class TurnOutcomeUnknown(Exception):
    """The turn's transaction was sent and no answer came back: it may or may not be stored (internal)."""
