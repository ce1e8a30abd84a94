"""The engine's errors: what went wrong, in words a client may read, and a code that names it.

No HTTP here: each front door maps these types to its statuses and headers in one table
(chat/web/errors.py, and the OpenAI door's words in chat/web/openai/errors.py).

    ChatError                       base: a code and a safe message (never a secret or a trace)
    ├── InvalidRequest              an ID, a limit, an input or a setting of the request is malformed
    │   ├── ContentFiltered         the model's content filter refused the prompt
    │   └── ContextTooLong          the prompt is too long for the model, even with half the window
    ├── ConversationNotFound        unknown, or another owner's: existence is never revealed; also
    │                               a turn whose conversation was deleted while it was in flight
    ├── NotFound                    a response or an item that is not there, or another owner's
    │   └── ItemReferenceNotFound   an input's reference to a stored item; `position` says which input
    ├── ConversationBusy            too many concurrent turns on one conversation; retry
    ├── DuplicateRequest            a streamed answer lost to a concurrent request with its Idempotency-Key
    ├── PayloadTooLarge             a message, a body or a turn over its limit
    ├── IdempotencyKeyReused        an Idempotency-Key sent again with a different message
    ├── RateLimited                 the model's rate limit or the daily quota; `retry_after` seconds
    ├── ModelUnavailable            the model failed, refused our credential, or cut its answer
    │   ├── ModelOverloaded         the model's endpoint said it is unavailable for now
    │   └── ModelCredentialUnavailable  no token for the model (the app's managed identity)
    ├── AnswerTooLarge              an answer too large to store in one transaction
    ├── ModelTimeout                the model did not answer in time
    ├── StorageUnavailable          Table Storage failed, is unreachable or did not answer in time
    │   └── TableMissing            a table does not exist (deleted, or being deleted); names it
    ├── ServerShuttingDown          shut-down cut a streamed answer before it was stored
    └── ConfigurationError          a setting is missing or contradictory; names the variable

ContextTooLong reaches a client only once the turn has shrunk its window and retried, or when the
request disabled truncation. TurnConflict is internal to the store: another turn, or a delete,
changed the conversation's head first; the turn reads it again and renumbers, or, after a delete,
answers ConversationNotFound. TurnOutcomeUnknown is internal too: the turn's transaction was sent
but its answer never came (the connection dropped, or storage answered a server error), so it may
be stored; the turn reads the conversation again to learn which, and answers what was stored.
"""

from __future__ import annotations


class ChatError(Exception):
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidRequest(ChatError):
    code = "invalid_request"


class ContentFiltered(InvalidRequest):
    code = "content_filter"


class ContextTooLong(InvalidRequest):
    code = "context_length_exceeded"


class ConversationNotFound(ChatError):
    code = "conversation_not_found"

    def __init__(self, message: str = "No such conversation.") -> None:
        super().__init__(message)


class NotFound(ChatError):
    """A response or an item that is not there (or is another owner's); `code` says which."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, code=code)


class ItemReferenceNotFound(NotFound):
    """An input item names a stored item its owner has no item under; `position` is that input's."""

    def __init__(self, item_id: str, *, position: int) -> None:
        super().__init__(f"Item with id '{item_id[:100]}' not found.", code="item_not_found")
        self.position = position


class ConversationBusy(ChatError):
    code = "conversation_busy"


class DuplicateRequest(ChatError):
    code = "duplicate_request"


class PayloadTooLarge(ChatError):
    code = "too_large"


class IdempotencyKeyReused(ChatError):
    code = "idempotency_key_reused"


class RateLimited(ChatError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, retry_after)


class ModelUnavailable(ChatError):
    code = "model_error"


class ModelOverloaded(ModelUnavailable):
    pass


class ModelCredentialUnavailable(ModelUnavailable):
    code = "model_credential_unavailable"


class AnswerTooLarge(ChatError):
    code = "answer_too_large"


class ModelTimeout(ChatError):
    code = "model_timeout"


class StorageUnavailable(ChatError):
    code = "storage_unavailable"


class TableMissing(StorageUnavailable):
    """A table the app uses does not exist: its next use creates it again (in Azure, once a
    deletion has finished; an app refused Create Table waits for the deployment to make it)."""

    def __init__(self, table: str, *, being_deleted: bool = False) -> None:
        state = "is being deleted" if being_deleted else "does not exist"
        super().__init__(f"Storage table {table} {state}; the app creates it again on its next use.")
        self.table = table


class ServerShuttingDown(ChatError):
    code = "server_shutting_down"


class ConfigurationError(ChatError):
    code = "configuration_error"


class TurnConflict(Exception):
    """Another turn, or a delete, changed the conversation's head before this turn's transaction (internal)."""


class TurnOutcomeUnknown(Exception):
    """The turn's transaction was sent and no answer came back: it may or may not be stored (internal)."""
