"""The errors only the web raises, and the one table from every error to its HTTP status and headers.

    BadRequest              400 a body, header or query parameter the door cannot read (not JSON,
                                not UTF-8, the wrong shape, a bad limit)
    BodyTooLarge            413 a body over a door's bounds (bytes, messages, JSON values)
    Unauthenticated         401 a trusted client principal is missing or malformed
    OriginNotAllowed        403 a CORS preflight from an origin not in CHAT_ALLOWED_ORIGINS
    RouteNotFound           404 a path no route matches (an empty, `.` or `..` segment included)
    MethodNotAllowed        405 with the methods the route allows (`Allow`)
    UnsupportedMediaType    415 a body not sent as application/json

BadRequest and BodyTooLarge are kinds of the engine's InvalidRequest and PayloadTooLarge, which a
turn's own checks raise for the same faults (the OpenAI door's InvalidParameter, naming the field,
is one too). STATUSES gives the engine's errors (chat/engine/errors.py)
their statuses, a subclass its own where it has one; both doors answer with these statuses, each
in its own body (the OpenAI door's words are in chat/web/openai/errors.py).
"""

from __future__ import annotations

from chat.engine import errors
from chat.engine.errors import ChatError, InvalidRequest, PayloadTooLarge


class BadRequest(InvalidRequest):
    pass


class BodyTooLarge(PayloadTooLarge):
    pass


class Unauthenticated(ChatError):
    code = "unauthenticated"


class OriginNotAllowed(ChatError):
    code = "origin_not_allowed"


class RouteNotFound(ChatError):
    code = "not_found"

    def __init__(self) -> None:
        super().__init__("No such route.")


class MethodNotAllowed(ChatError):
    code = "method_not_allowed"

    def __init__(self, method: str, allowed: tuple[str, ...]) -> None:
        super().__init__(f"{method} is not allowed here; use {', '.join(allowed)}.")
        self.allowed = allowed


class UnsupportedMediaType(ChatError):
    code = "unsupported_media_type"


STATUSES: dict[type[ChatError], int] = {
    errors.ChatError: 500,
    errors.InvalidRequest: 400,
    Unauthenticated: 401,
    OriginNotAllowed: 403,
    errors.ConversationNotFound: 404,
    errors.NotFound: 404,
    RouteNotFound: 404,
    MethodNotAllowed: 405,
    errors.ConversationBusy: 409,
    errors.DuplicateRequest: 409,
    errors.PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    errors.IdempotencyKeyReused: 422,
    errors.RateLimited: 429,
    errors.ModelUnavailable: 502,
    errors.ModelOverloaded: 503,
    errors.ModelCredentialUnavailable: 503,
    errors.AnswerTooLarge: 502,
    errors.ModelTimeout: 504,
    errors.StorageUnavailable: 503,
    errors.ServerShuttingDown: 503,
    errors.ConfigurationError: 503,
}
CONVERSATION_BUSY_RETRY_AFTER = "1"


def status_of(error: ChatError) -> int:
    """The status of the error's type, or of the nearest of its bases the table names."""
    return next(STATUSES[kind] for kind in type(error).__mro__ if kind in STATUSES)


def headers_of(error: ChatError) -> dict[str, str]:
    if isinstance(error, errors.RateLimited):
        return {"Retry-After": str(error.retry_after)}
    if isinstance(error, errors.ConversationBusy):
        return {"Retry-After": CONVERSATION_BUSY_RETRY_AFTER}
    if isinstance(error, MethodNotAllowed):
        return {"Allow": ", ".join(error.allowed)}
    return {}
