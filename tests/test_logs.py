"""What a turn logs: under the Functions worker every record at INFO or above goes to Application
Insights, so the SDKs' per-request HTTP logging must stay quiet while the app's own records flow.

Handlers are called in-process, as the worker calls them, with the root logger at INFO.
"""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from tests.support.functions import body_of, handler, request

pytestmark = pytest.mark.anyio

SDK_LOGGERS = ("azure", "httpx", "httpx2", "httpcore", "httpcore2", "openai", "aiohttp", "msal")


def from_sdk(record: logging.LogRecord) -> bool:
    return any(record.name == name or record.name.startswith(name + ".") for name in SDK_LOGGERS)


@pytest.fixture
def unset_sdk_levels():
    """The SDK loggers as a fresh worker has them (no level of their own), whatever an earlier
    test's dependencies set, so the turn below shows what building the dependencies does."""
    saved = {name: logging.getLogger(name).level for name in SDK_LOGGERS}
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize(("function", "path"), [("chat", "/api/chat"), ("chat_stream", "/api/chat/stream")])
async def test_a_turn_logs_no_sdk_record_at_info_and_the_apps_own_records(
    in_process, unset_sdk_levels, caplog, function, path
):
    caplog.set_level(logging.INFO)
    session = f"logs-{uuid.uuid4().hex}"
    body = json.dumps({"messages": [{"role": "user", "content": "quiet please"}], "sessionState": session})
    response = await handler(function)(request("POST", path, body.encode()))
    assert response.status_code == 200
    await body_of(response)

    noisy = [f"{r.name} {r.levelname}: {r.getMessage()[:80]!r}" for r in caplog.records if from_sdk(r)]
    assert [r for r in caplog.records if from_sdk(r) and r.levelno <= logging.INFO] == [], noisy
    stored = [r for r in caplog.records if r.name.startswith("chat.") and "stored" in r.getMessage()]
    assert [r.levelname for r in stored] == ["INFO"]
