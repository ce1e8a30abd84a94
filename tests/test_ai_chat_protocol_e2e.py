"""The `@microsoft/ai-chat-protocol` JavaScript client works against the chat routes unchanged."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.e2e


def test_the_protocol_client_chats_streams_and_reads_errors(server):
    finished = subprocess.run(
        ["node", str(ROOT / "tests" / "clients" / "ai_chat_protocol.mjs"), f"{server.url}/api/chat"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(finished.stdout)
    completion = result["completion"]
    assert completion["message"] == {"role": "assistant", "content": "Echo #0: Hello from the protocol client"}
    session = completion["sessionState"]
    chunks = result["chunks"]
    assert chunks[0] == {"delta": {"role": "assistant"}, "sessionState": session}
    assert "".join(c["delta"].get("content", "") for c in chunks) == "Echo #2: And a streamed follow-up"
    assert chunks[-1]["context"]["finish_reason"] == "stop"
    assert result["error"]["code"] == "invalid_request"
    assert "role 'user'" in result["error"]["message"]
