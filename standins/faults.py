"""The errors the model stand-in answers, as Azure OpenAI and OpenAI word them, and which fault a
request's directives ask for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .completion import Directives, count_prompt_tokens, last_user_text
from .protocol import Reject, invalid_request


def server_error(status: int, azure: bool) -> Reject:
    if status == 503:
        code, message = "ServiceUnavailable", "The engine is currently overloaded, please try again later."
    else:
        code = "InternalServerError"
        message = "The server had an error while processing your request. Sorry about that!"
    if azure:
        return Reject(status, {"error": {"code": code, "message": message}})
    return Reject(status, {"error": {"message": message, "type": "server_error", "param": None, "code": None}})


def rate_limited(azure: bool, api_version: str | None) -> Reject:
    headers = {"retry-after": "7", "retry-after-ms": "10"}
    if azure:
        message = (
            f"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version {api_version} "
            "have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 7 seconds. "
            "Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default "
            "rate limit."
        )
        return Reject(429, {"error": {"code": "429", "message": message}}, headers)
    error = {
        "message": "Rate limit reached for requests. Please try again in 7s.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    return Reject(429, {"error": error}, headers)


def content_filter_results(filtered: str | None = None, *, prompt: bool = False) -> dict[str, Any]:
    """Azure's per-category annotations; ``filtered`` names the one category that tripped."""
    results: dict[str, Any] = {
        name: {"filtered": name == filtered, "severity": "medium" if name == filtered else "safe"}
        for name in ("hate", "self_harm", "sexual", "violence")
    }
    if prompt:
        results["jailbreak"] = {"filtered": False, "detected": False}
    else:
        results["protected_material_code"] = {"filtered": False, "detected": False}
        results["protected_material_text"] = {"filtered": False, "detected": False}
    return results


def prompt_filtered() -> Reject:
    error = {
        "code": "content_filter",
        "message": (
            "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
            "Please modify your prompt and retry. To learn more about our content filtering policies please read "
            "our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
        ),
        "param": "prompt",
        "type": None,
        "status": 400,
        "innererror": {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_result": content_filter_results("violence", prompt=True),
        },
    }
    return Reject(400, {"error": error})


def context_length_exceeded(prompt_tokens: int) -> Reject:
    return invalid_request(
        "This model's maximum context length is 128000 tokens. However, your messages resulted in "
        f"{prompt_tokens} tokens. Please reduce the length of the messages.",
        param="messages",
        code="context_length_exceeded",
    )


def fault_for(
    directives: Directives,
    body: dict[str, Any],
    messages: list[dict[str, Any]],
    *,
    azure: bool,
    api_version: str | None,
    attempt: Callable[[str], int],
) -> tuple[str, Reject] | None:
    """The fault the directives ask for, as its journal name and its answer; None for none.
    `attempt` counts the requests so far with a last user message, this one included."""
    if directives.context_limit is not None and len(messages) > directives.context_limit:
        return "context-limit", context_length_exceeded(count_prompt_tokens(messages, body.get("tools")))
    if directives.prompt_filter:
        return "filter", prompt_filtered()
    if directives.status == 429:
        return "429", rate_limited(azure, api_version)
    if directives.status is not None:
        return str(directives.status), server_error(directives.status, azure)
    if directives.fail_first and attempt(last_user_text(messages)) <= directives.fail_first:
        return "fail-first", server_error(500, azure)
    return None
