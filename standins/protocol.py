"""Wire pieces the model stand-in and its tool support share: an error answer, message text."""

from __future__ import annotations

from typing import Any


class Reject(Exception):
    """An error answer: status, JSON body and extra headers."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> Reject:
    """A 400 in OpenAI's error shape, which Azure OpenAI answers too for request validation."""
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return Reject(400, {"error": error})


def text_of(content: Any) -> str:
    """A message's text: a string, the text parts of an array, or nothing (an assistant's null content)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))
