"""A small client of our HTTP API for the tests, over aiohttp, as a browser or bot would call it."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from tests.support.wire import PRINCIPAL

# The served app (uvicorn) closes a connection once it has been idle this long. A request sent on a
# connection the server has closed (just then, or while the test blocked its event loop and could
# not see it go) is lost, and aiohttp rightly does not resend a POST; so the client lets go of an
# idle connection well before the server would.
SERVER_KEEP_ALIVE_SECONDS = 5
CLIENT_KEEP_ALIVE_SECONDS = 2


@dataclass
class Reply:
    status: int
    headers: CIMultiDict  # case-insensitive, as HTTP headers are
    body: Any  # parsed JSON, or None
    lines: list[dict[str, Any]] = field(default_factory=list)  # a JSON-lines stream, parsed

    @property
    def error_code(self) -> str | None:
        return self.body["error"]["code"] if isinstance(self.body, dict) and "error" in self.body else None

    @property
    def text(self) -> str:
        """The content of a streamed answer, reassembled."""
        return "".join(line.get("delta", {}).get("content", "") for line in self.lines)


def signed_in(user_id: str, provider: str = "aad") -> dict[str, str]:
    """The `x-ms-client-principal` header Static Web Apps sends for a signed-in user."""
    document = {"identityProvider": provider, "userId": user_id, "userDetails": user_id, "userRoles": ["authenticated"]}
    return {PRINCIPAL: base64.b64encode(json.dumps(document).encode("utf-8", "surrogatepass")).decode()}


def conversation_path(conversation_id: str, suffix: str = "") -> str:
    segment = quote(conversation_id, safe="")
    if segment in (".", ".."):
        segment = segment.replace(".", "%2E")  # as the README asks: a bare dot segment is a path step
    return "/api/conversations/" + segment + suffix


class Api:
    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url
        self.headers = headers or {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(keepalive_timeout=CLIENT_KEEP_ALIVE_SECONDS),
            timeout=aiohttp.ClientTimeout(total=120),
        )
        return self

    async def __aexit__(self, *exc) -> None:
        await self._session.close()

    def url(self, path: str) -> URL:
        return URL(self.base_url + path, encoded=True)

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        content_type: str | None = "application/json",
    ) -> Reply:
        if json_body is not None:
            body = json.dumps(json_body).encode()
        all_headers = {**({"Content-Type": content_type} if content_type else {}), **self.headers, **(headers or {})}
        async with self._session.request(
            method,
            self.url(path),
            data=body,
            headers=all_headers,
            # aiohttp would otherwise send a body as application/octet-stream
            skip_auto_headers=() if content_type else ("Content-Type",),
        ) as response:
            raw = await response.read()
            content_type = response.headers.get("Content-Type", "")
            reply = Reply(response.status, CIMultiDict(response.headers), None)
            if "jsonl" in content_type:
                # JSON lines end with "\n" only; str.splitlines would also split at a U+2028 in a string.
                reply.lines = [json.loads(line) for line in raw.decode().split("\n") if line]
            elif raw:
                reply.body = json.loads(raw)
            return reply

    async def raw(self, method: str, path: str) -> tuple[int, CIMultiDict, bytes]:
        """A request without a body, its answer unparsed: a page, a script, an image."""
        async with self._session.request(method, self.url(path)) as response:
            return response.status, CIMultiDict(response.headers), await response.read()

    async def send(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, CIMultiDict, bytes]:
        """A request with exactly the headers given (beside the client's), its answer unparsed."""
        async with self._session.request(
            method,
            self.url(path),
            data=body,
            headers={**self.headers, **(headers or {})},
            skip_auto_headers=("Content-Type",),
        ) as response:
            return response.status, CIMultiDict(response.headers), await response.read()

    async def chat(
        self,
        content: str,
        session: str | None = None,
        *,
        stream: bool = False,
        headers: dict[str, str] | None = None,
        history: list[dict[str, str]] | None = None,
    ) -> Reply:
        document: dict[str, Any] = {"messages": [*(history or []), {"role": "user", "content": content}]}
        if session is not None:
            document["sessionState"] = session
        return await self.request(
            "POST", "/api/chat/stream" if stream else "/api/chat", json_body=document, headers=headers
        )

    async def messages(self, conversation_id: str, **params: Any) -> Reply:
        query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items())
        return await self.request(
            "GET", conversation_path(conversation_id, "/messages") + (f"?{query}" if query else "")
        )

    async def conversations(self, **params: Any) -> Reply:
        query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items())
        return await self.request("GET", "/api/conversations" + (f"?{query}" if query else ""))

    async def delete(self, conversation_id: str) -> Reply:
        return await self.request("DELETE", conversation_path(conversation_id))
