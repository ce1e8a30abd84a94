"""The one table from error to HTTP status and headers (chat/web/errors.py): every error the engine or
the web raises has the status and headers it is documented with in README's error table."""

from __future__ import annotations

import inspect

import pytest

from chat.engine import errors
from chat.web import errors as web_errors
from chat.web.errors import STATUSES, headers_of, status_of
from chat.web.openai.errors import InvalidParameter, ParameterNotFound

STATUS = [
    (errors.ChatError("Something went wrong."), 500),
    (errors.InvalidRequest("Bad."), 400),
    (errors.ContentFiltered("Filtered."), 400),
    (errors.ContextTooLong("Too long."), 400),
    (web_errors.BadRequest("Not JSON.", code="invalid_json"), 400),
    (InvalidParameter("Invalid 'limit'.", param="limit"), 400),
    (web_errors.Unauthenticated("Sign in first."), 401),
    (web_errors.OriginNotAllowed("Not allowed."), 403),
    (errors.ConversationNotFound(), 404),
    (errors.NotFound("No such response.", code="response_not_found"), 404),
    (errors.ItemReferenceNotFound("msg_1", position=0), 404),
    (ParameterNotFound("No such model.", param="model", code="model_not_found"), 404),
    (web_errors.RouteNotFound(), 404),
    (web_errors.MethodNotAllowed("PUT", ("GET",)), 405),
    (errors.ConversationBusy("Busy."), 409),
    (errors.DuplicateRequest("Stored first."), 409),
    (errors.PayloadTooLarge("Too large.", code="message_too_large"), 413),
    (web_errors.BodyTooLarge("Too large.", code="request_too_large"), 413),
    (web_errors.UnsupportedMediaType("Send JSON."), 415),
    (errors.IdempotencyKeyReused("Reused."), 422),
    (errors.RateLimited("Rate limited.", retry_after=7), 429),
    (errors.ModelUnavailable("Down."), 502),
    (errors.AnswerTooLarge("Too large to store."), 502),
    (errors.ModelOverloaded("Overloaded."), 503),
    (errors.ModelCredentialUnavailable("No token."), 503),
    (errors.StorageUnavailable("Down."), 503),
    (errors.TableMissing("chatmessages"), 503),
    (errors.ServerShuttingDown("Cut."), 503),
    (errors.ConfigurationError("CHAT_X is missing."), 503),
    (errors.ModelTimeout("Late."), 504),
]


@pytest.mark.parametrize(("error", "status"), STATUS, ids=[type(error).__name__ for error, _ in STATUS])
def test_each_error_has_its_status(error, status):
    assert status_of(error) == status


def test_every_error_type_is_in_the_list_above():
    raised = {type(error) for error, _ in STATUS}
    for module in (errors, web_errors):
        for _, kind in inspect.getmembers(module, inspect.isclass):
            if issubclass(kind, errors.ChatError) and kind.__module__ == module.__name__:
                assert kind in raised, kind.__name__
    assert set(STATUSES) <= raised


def test_the_headers_of_a_rate_limit_a_busy_conversation_and_a_method_not_allowed():
    assert headers_of(errors.RateLimited("Quota.", retry_after=3600, code="quota_exceeded")) == {"Retry-After": "3600"}
    assert headers_of(errors.ConversationBusy("Busy.")) == {"Retry-After": "1"}
    assert headers_of(web_errors.MethodNotAllowed("PUT", ("GET", "POST"))) == {"Allow": "GET, POST"}
    assert headers_of(errors.StorageUnavailable("Down.")) == {}
