"""The chat backend's two chat routes, as the bot calls them: one turn answered whole, or streamed.

The bot sends the channel's conversation ID as `sessionState`, so the backend keeps each channel
conversation's history and the bot stores nothing. Every failure, an error the backend answered or
a backend out of reach, comes out as one `BackendError`, whose `sentence` is what the user reads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

# The backend's error messages are written for developers; the bot's user reads one of these.
SENTENCES = {
    "rate_limited": "I'm getting more questions than I can answer right now. Please try again in a minute.",
    "quota_exceeded": "I've answered as many questions as I can for today. Please try again tomorrow.",
    "conversation_busy": "I'm still answering your previous message. Please send this one again in a moment.",
    "message_too_large": "That message is too long for me. Please send a shorter one.",
    "content_filter": "I can't answer that message: the content filter blocked it.",
    "model_timeout": "Finding an answer took too long. Please try again.",
}
FALLBACK = "Sorry, I couldn't get an answer just now. Please try again later."

# A quota_exceeded this short means the day's tokens are held by answers still in progress, not
# spent: the user may try again soon.
SHORT_WAIT_SECONDS = 60


class BackendError(Exception):
    """The backend answered an error (`status`, its `code`), or could not be reached (`status` None)."""

    def __init__(self, code: str, status: int | None = None, retry_after: int | None = None) -> None:
        super().__init__(f"{code} (HTTP {status})" if status else code)
        self.code = code
        self.status = status
        self.retry_after = retry_after

    @property
    def sentence(self) -> str:
        if self.code == "quota_exceeded" and self.retry_after is not None and self.retry_after <= SHORT_WAIT_SECONDS:
            return SENTENCES["rate_limited"]
        return SENTENCES.get(self.code, FALLBACK)


class ChatBackend:
    """POST /api/chat and /api/chat/stream with the function key, over one aiohttp session."""

    def __init__(self, base_url: str, function_key: str | None, session: aiohttp.ClientSession) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {"x-functions-key": function_key} if function_key else {}
        self._session = session

    async def answer(self, conversation_id: str, text: str, *, idempotency_key: str | None = None) -> str:
        """The whole answer to `text` in the conversation."""
        try:
            async with self._post("/api/chat", conversation_id, text, idempotency_key) as response:
                content = _field(await response.json(), "message", "content")
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise _unreachable(error) from error
        if not isinstance(content, str):
            log.warning("the chat backend's answer has no message content")
            raise BackendError("no_content")
        return content

    async def stream(
        self, conversation_id: str, text: str, *, idempotency_key: str | None = None
    ) -> AsyncIterator[str]:
        """The answer to `text` in pieces, as the model writes them."""
        try:
            async with self._post("/api/chat/stream", conversation_id, text, idempotency_key) as response:
                async for raw in response.content:  # one JSON document a line
                    line = json.loads(raw)
                    if (code := _field(line, "error", "code")) is not None:
                        # Once the stream has started, a failure is its last line; the turn is not stored.
                        log.warning("the chat backend's stream failed: %s", code)
                        raise BackendError(str(code))
                    if content := _field(line, "delta", "content"):
                        yield str(content)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise _unreachable(error) from error

    @asynccontextmanager
    async def _post(
        self, path: str, conversation_id: str, text: str, idempotency_key: str | None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        document = {"messages": [{"role": "user", "content": text}], "sessionState": conversation_id}
        headers = {**self._headers, **({"Idempotency-Key": idempotency_key} if idempotency_key else {})}
        async with self._session.post(self._base_url + path, json=document, headers=headers) as response:
            if response.status != 200:
                raise await _error(response)
            yield response


async def _error(response: aiohttp.ClientResponse) -> BackendError:
    try:
        code = _field(json.loads(await response.read()), "error", "code")
    except ValueError:  # not JSON: a proxy's or the platform's own error page
        code = None
    code = code if isinstance(code, str) else f"http_{response.status}"
    if response.status in (401, 403):
        log.error("the chat backend refused the bot (%s): check CHAT_FUNCTION_KEY", response.status)
    else:
        log.warning("the chat backend answered %s %s", response.status, code)
    retry_after = response.headers.get("Retry-After", "")
    return BackendError(code, response.status, int(retry_after) if retry_after.isdigit() else None)


def _field(document: Any, *names: str) -> Any:
    """document[name][name]..., or None where a level is missing or not an object."""
    for name in names:
        document = document.get(name) if isinstance(document, dict) else None
    return document


def _unreachable(error: Exception) -> BackendError:
    log.warning("the chat backend could not be reached, or its answer is not JSON: %s", type(error).__name__)
    return BackendError("unreachable")
