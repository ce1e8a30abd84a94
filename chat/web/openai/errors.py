"""Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with the status the SDKs map
to their exception classes (400 BadRequestError, 401 AuthenticationError, 403 PermissionDeniedError,
404 NotFoundError, 409 ConflictError, 422 UnprocessableEntityError, 429 RateLimitError, 5xx
InternalServerError; 405 and 413 reach the SDKs as a plain APIStatusError).

`type` is what OpenAI sends: `invalid_request_error` for every 4xx but 429, `server_error` for 5xx,
and for 429 the kind of limit, `requests` (the model's rate limit, code `rate_limit_exceeded`) or
`tokens` (the app's daily token quota). The message is the error's own, written for clients: no
trace, no secret. This module is the front door's one import of the engine's errors.
"""

from __future__ import annotations

from typing import Any

from chat.engine.errors import ChatError, InvalidRequest, ItemReferenceNotFound, NotFound, RateLimited
from chat.web.errors import status_of

__all__ = ["ChatError", "InvalidParameter", "ParameterNotFound", "error_object"]

# Our codes that OpenAI spells differently, so that clients written for OpenAI recognise them.
OPENAI_CODES = {"rate_limited": "rate_limit_exceeded"}
# The field an engine error is about, on this door, when the error itself cannot know its name.
PARAMS = {
    "invalid_conversation_id": "conversation",
    "message_too_large": "input",
    "input_too_large": "input",
    "function_call_not_found": "input",
    "invalid_after": "after",
    "invalid_idempotency_key": "Idempotency-Key",
    "previous_response_not_found": "previous_response_id",
}


class ParameterNotFound(NotFound):
    """404 for what one field of a request names (`model`): `param` names the field."""

    def __init__(self, message: str, *, param: str, code: str) -> None:
        super().__init__(message, code=code)
        self.param = param


class InvalidParameter(InvalidRequest):
    """400 for one field of a request: `param` names it as OpenAI does (`input[0].content[1].type`)."""

    def __init__(self, message: str, *, param: str | None, code: str = "invalid_value") -> None:
        super().__init__(message, code=code)
        self.param = param


def error_object(error: ChatError) -> dict[str, Any]:
    return {
        "message": error.message,
        "type": _error_type(error),
        "param": _param(error),
        "code": OPENAI_CODES.get(error.code, error.code),
    }


def _param(error: ChatError) -> str | None:
    """The field of the request the error is about, as OpenAI names it (`input[2]`), if any."""
    if isinstance(error, InvalidParameter | ParameterNotFound) and error.param is not None:
        return error.param
    if isinstance(error, ItemReferenceNotFound):
        return f"input[{error.position}]"
    return PARAMS.get(error.code)


def _error_type(error: ChatError) -> str:
    status = status_of(error)
    if status >= 500:
        return "server_error"
    if isinstance(error, RateLimited) or status == 429:
        return "requests" if error.code == "rate_limited" else "tokens"
    return "invalid_request_error"
