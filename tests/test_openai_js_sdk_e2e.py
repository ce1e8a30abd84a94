"""OpenAI's official JavaScript SDK (the npm `openai` package), unchanged, drives the
OpenAI-compatible door: conversations and items paged both ways, a plain and a streamed response,
the stream helper, a tool round trip, a chain and a branch, an image read back, and the SDK's error classes."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.support import ROOT
from tests.support.prompts import prompt_of

pytestmark = pytest.mark.e2e


def test_the_javascript_sdk_works_unchanged(server, standins):
    finished = subprocess.run(
        ["node", str(ROOT / "tests" / "clients" / "openai_sdk.mjs"), f"{server.url}/api/v1", standins.deployment],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr
    result = json.loads(finished.stdout)

    assert result["conversation"]["id"].startswith("conv_") and result["conversation"]["metadata"] == {"from": "js"}
    notes = ["My name is Ada.", *(f"note {n}" for n in range(1, 6))]
    assert result["ascending"] == notes
    assert result["descending"] == notes[::-1]

    assert result["plain"] == {
        "text": "Echo #6: What is my name?",
        "status": "completed",
        "conversation": {"id": result["conversation"]["id"]},
    }
    events = result["events"]
    assert [e["sequence"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "Echo #8: Streamed"

    assert result["helper"]["deltas"] == result["helper"]["text"] == "Echo #0: With the helper"
    assert result["retrieved"] == "Echo #0: With the helper"

    call = result["tool"]["call"]
    assert call["type"] == "function_call" and call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Oslo"}
    assert result["tool"]["answer"] == "Tool result: snow"

    assert result["chain"] == {"two": "Echo #2: js two", "branch": "Echo #2: js branch"}

    image = result["image"]
    assert image["text"] == "Echo #0: js what is in it?"
    assert image["parts"] == [
        {"type": "input_text", "text": "js what is in it?"},
        {"type": "input_image", "image_url": image["sent"], "detail": "low"},
    ]
    [asked] = [m for m in prompt_of(standins, "js what is in it?") if m["role"] == "user"]
    assert {"type": "image_url", "image_url": {"url": image["sent"], "detail": "low"}} in asked["content"]

    errors = result["errors"]
    assert errors["unsupported"] == {
        "class": "BadRequestError",
        "status": 400,
        "code": "unsupported_parameter",
        "param": "top_logprobs",
    }
    assert errors["model"] == {"class": "NotFoundError", "status": 404, "code": "model_not_found", "param": "model"}
    assert errors["missing"]["class"] == "NotFoundError" and errors["missing"]["code"] == "conversation_not_found"
    assert errors["limited"]["class"] == "RateLimitError" and errors["limited"]["code"] == "rate_limit_exceeded"
    assert errors["upstream"]["class"] == "InternalServerError" and errors["upstream"]["status"] == 503
