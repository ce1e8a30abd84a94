"""The bot example's backend client (examples/bot/backend.py) against a loopback stand-in of the
backend that answers what the real one answers only in deployments the e2e tests do not start
(a daily quota, the platform's own error pages, a backend that is down)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from standins import start_server
from tests.support import ROOT
from tests.support.ports import free_port

pytestmark = pytest.mark.anyio


def load_backend() -> Any:
    spec = importlib.util.spec_from_file_location("bot_backend", ROOT / "examples" / "bot" / "backend.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


backend = load_backend()


async def serve(answer: web.StreamResponse | None = None, *, lines: list[Any] | None = None) -> tuple[Any, str]:
    """A backend whose chat routes answer `answer`, or stream `lines` as JSON lines."""

    async def chat(request: web.Request) -> web.StreamResponse:
        if lines is None:
            assert answer is not None
            return answer
        response = web.StreamResponse(headers={"Content-Type": "application/jsonl"})
        await response.prepare(request)
        for line in lines:
            await response.write((line if isinstance(line, str) else json.dumps(line)).encode() + b"\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/api/chat", chat)
    app.router.add_post("/api/chat/stream", chat)
    runner, port = await start_server(app, "127.0.0.1", 0)
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def failure(session: aiohttp.ClientSession, url: str, *, stream: bool = False) -> Any:
    chat = backend.ChatBackend(url, "key", session)
    with pytest.raises(backend.BackendError) as caught:
        if stream:
            [piece async for piece in chat.stream("c", "Hello")]
        else:
            await chat.answer("c", "Hello")
    return caught.value


def error(status: int, code: str, **headers: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": "for developers"}}, status=status, headers=headers)


@pytest.mark.parametrize(
    ("answer", "code", "sentence"),
    [
        (error(429, "rate_limited", **{"Retry-After": "7"}), "rate_limited", "more questions than I can answer"),
        (error(429, "quota_exceeded", **{"Retry-After": "36000"}), "quota_exceeded", "for today"),
        (error(429, "quota_exceeded", **{"Retry-After": "3"}), "quota_exceeded", "more questions than I can answer"),
        (error(413, "message_too_large"), "message_too_large", "too long"),
        (web.Response(status=502, text="<html>Bad Gateway</html>", content_type="text/html"), "http_502", "Sorry"),
        (web.Response(status=401), "http_401", "Sorry"),
        (web.Response(text="not JSON", content_type="application/json"), "unreachable", "Sorry"),
        (web.json_response({"message": None}), "no_content", "Sorry"),
    ],
    ids=["rate limit", "quota spent", "quota held", "too long", "platform page", "bad key", "not JSON", "no content"],
)
async def test_an_answer_that_is_no_answer_is_one_error_with_a_sentence(session, answer, code, sentence):
    runner, url = await serve(answer)
    try:
        caught = await failure(session, url)
    finally:
        await runner.cleanup()
    assert caught.code == code
    assert sentence in caught.sentence
    assert "developers" not in caught.sentence


async def test_a_backend_out_of_reach_is_an_error_with_a_sentence(session):
    caught = await failure(session, f"http://127.0.0.1:{free_port()}")
    assert (caught.code, caught.status) == ("unreachable", None)
    assert caught.sentence == backend.FALLBACK


async def test_a_stream_yields_the_content_and_stops_at_its_error_line(session):
    lines = [
        {"delta": {"role": "assistant"}, "sessionState": "c"},
        {"delta": {"content": "Hel"}},
        {"delta": {"content": "lo"}},
        {"error": {"code": "model_timeout", "message": "for developers"}},
    ]
    runner, url = await serve(lines=lines)
    pieces: list[str] = []
    try:
        with pytest.raises(backend.BackendError) as caught:
            async for piece in backend.ChatBackend(url, None, session).stream("c", "Hello"):
                pieces.append(piece)
    finally:
        await runner.cleanup()
    assert pieces == ["Hel", "lo"]
    assert caught.value.code == "model_timeout" and "took too long" in caught.value.sentence


async def test_a_stream_line_that_is_not_json_is_an_error(session):
    runner, url = await serve(lines=[{"delta": {"role": "assistant"}}, "<html>"])
    try:
        caught = await failure(session, url, stream=True)
    finally:
        await runner.cleanup()
    assert caught.code == "unreachable"
