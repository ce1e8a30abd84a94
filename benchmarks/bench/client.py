"""A turn as a client makes it, on either door, timed to its answer and to a stream's first delta;
and the model stand-in called straight, for its own latency."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

from benchmarks.bench.plan import STREAMED
from benchmarks.bench.processes import StandInProcess
from chat.settings import DEFAULT_API_VERSION, DEFAULT_SYSTEM_PROMPT

CONNECTION_IDLE_SECONDS = 2  # the client lets go of idle connections before uvicorn's 5 s do


class TurnFailed(RuntimeError):
    """A turn answered with an error: counted in the figures of its phase, not timed."""

    def __init__(self, door: str, status: int, code: str) -> None:
        super().__init__(f"{door} answered {status} {code}")
        self.label = f"{status} {code}"


@dataclass
class Timing:
    wall: float  # seconds until the whole answer
    first: float | None = None  # seconds until the first content delta of a stream


def _request(door: str, conversation_id: str, content: str) -> tuple[str, dict[str, Any]]:
    if door in ("chat", "chat_stream"):
        body = {"messages": [{"role": "user", "content": content}], "sessionState": conversation_id}
        return ("/api/chat/stream" if door == "chat_stream" else "/api/chat"), body
    body = {"model": "chat", "input": content, "conversation": conversation_id}
    if door == "responses_stream":
        body["stream"] = True
    return "/api/v1/responses", body


def _is_first_delta(door: str, line: bytes) -> bool:
    if door == "chat_stream":
        return line.startswith(b'{"delta":{"content"')
    return line.startswith(b"event: response.output_text.delta")


async def timed_turn(
    session: aiohttp.ClientSession, base: str, door: str, conversation_id: str, content: str
) -> Timing:
    """One turn on `door`, timed to the answer's end and, streamed, to its first delta."""
    path, body = _request(door, conversation_id, content)
    started = time.perf_counter()
    first = None
    async with session.post(base + path, json=body) as response:
        if response.status != 200:
            raise TurnFailed(door, response.status, _error_code(await response.text()))
        if door not in STREAMED:
            document = await response.json()
            if door == "responses" and document.get("status") != "completed":
                raise RuntimeError(f"responses answered {document.get('status')}")
            return Timing(time.perf_counter() - started)
        last = b""
        async for line in response.content:
            if first is None and _is_first_delta(door, line):
                first = time.perf_counter() - started
            if line.strip():
                last = line
    wall = time.perf_counter() - started
    finished = b'"context"' in last if door == "chat_stream" else b'"response.completed"' in last
    if first is None or not finished:
        raise TurnFailed(door, 200, "stream " + _error_code(last.decode(errors="replace").removeprefix("data: ")))
    return Timing(wall, first)


def _error_code(body: str) -> str:
    """The code of an error body of either door (or of a stream's error line), else its first words."""
    try:
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        return body[:80]
    return str(error.get("code") or error.get("type") or body[:80])


class DirectModel:
    """The model stand-in called straight, with a token of the identity stand-in: its own latency."""

    def __init__(self, session: aiohttp.ClientSession, standins: StandInProcess) -> None:
        self.session = session
        self.standins = standins
        deployment = standins.env["AZURE_OPENAI_CHAT_DEPLOYMENT"]
        self.url = (
            f"{standins.model_url}/openai/deployments/{deployment}/chat/completions?api-version={DEFAULT_API_VERSION}"
        )
        self.deployment = deployment
        self.token = ""

    async def authenticate(self) -> None:
        async with self.session.get(
            self.standins.env["IDENTITY_ENDPOINT"],
            params={"api-version": "2019-08-01", "resource": "https://cognitiveservices.azure.com"},
            headers={"X-IDENTITY-HEADER": self.standins.env["IDENTITY_HEADER"]},
        ) as response:
            response.raise_for_status()
            self.token = (await response.json())["access_token"]

    async def call(self, content: str, *, stream: bool) -> Timing:
        body: dict[str, Any] = {
            "model": self.deployment,
            "messages": [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, {"role": "user", "content": content}],
        }
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        started = time.perf_counter()
        first = None
        async with self.session.post(
            self.url, json=body, headers={"Authorization": f"Bearer {self.token}"}
        ) as response:
            response.raise_for_status()
            if not stream:
                await response.json()
                return Timing(time.perf_counter() - started)
            async for line in response.content:
                if first is None and line.startswith(b"data: {"):
                    choices = json.loads(line[6:]).get("choices") or [{}]
                    if (choices[0].get("delta") or {}).get("content"):
                        first = time.perf_counter() - started
        return Timing(time.perf_counter() - started, first)


def client_session(limit: int = 0) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, keepalive_timeout=CONNECTION_IDLE_SECONDS),
        timeout=aiohttp.ClientTimeout(total=300),
    )


def turn_text(label: str, latency: float) -> str:
    return f"benchmark {label} {uuid.uuid4().hex} [[sleep:{latency:g}]]"
