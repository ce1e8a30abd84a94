"""The tests' own HTTP client against the served app: a request never goes out on a connection the
server has already closed, however long the test was busy elsewhere. Without that, any test that
starts or stops a process between two turns would lose its next POST on a loaded machine."""

from __future__ import annotations

import time

import pytest

from tests.support.api import SERVER_KEEP_ALIVE_SECONDS

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def test_a_turn_after_the_client_was_busy_past_the_servers_keep_alive_is_answered(api):
    assert (await api.chat("hello")).status == 200
    # Busy without yielding to the event loop, as a test is while it starts a process: the server
    # closes the idle connection meanwhile, and the client's loop cannot see it go.
    time.sleep(SERVER_KEEP_ALIVE_SECONDS + 1)  # noqa: ASYNC251 - blocking the loop is the case under test
    reply = await api.chat("hello again")
    assert reply.status == 200, reply.body
    assert reply.body["message"]["content"] == "Echo #0: hello again"
