"""The agent frameworks' scripts under tests/frameworks run where they reach loopback only, and what
the tests check of what they sent (tests/test_frameworks_e2e.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

from tests.support import ROOT
from tests.support.loopback_only import REFUSED

SCRIPTS = ROOT / "tests" / "frameworks"
FRAMEWORKS_PYTHON = ROOT / ".venv-frameworks" / "bin" / "python"
DOC = ROOT / "docs" / "openai-compatible.md"
SYSTEM_PROMPT = "You are the test assistant."  # CHAT_SYSTEM_PROMPT in tests/support/servers.py


def framework_env() -> dict[str, str]:
    """A clean environment: a dummy key, no endpoint of the machine's, every telemetry off."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "LANG": "C.UTF-8",
        "OPENAI_API_KEY": "unused",
        "OPENAI_AGENTS_DISABLE_TRACING": "1",
        "DO_NOT_TRACK": "1",
    }


def run_script(script: str, server: Any, standins: Any) -> dict[str, Any]:
    """Run a framework's script, where it can reach loopback addresses only."""
    path = SCRIPTS / script
    if script.endswith(".mjs"):
        command = ["node", "--import", (SCRIPTS / "loopback_only.mjs").as_uri(), str(path)]
    else:
        assert FRAMEWORKS_PYTHON.exists(), "the frameworks' venv is missing: run scripts/test, which installs it"
        command = [str(FRAMEWORKS_PYTHON), "-m", "tests.support.loopback_only", str(path)]
    finished = subprocess.run(
        [*command, f"{server.url}/api/v1", standins.deployment],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=framework_env(),
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    assert REFUSED not in finished.stderr
    return json.loads(finished.stdout)


def model_requests(standins: Any, marker: str) -> list[dict[str, Any]]:
    """The requests the model stand-in was sent whose first user message names `marker`."""
    found = []
    for entry in standins.requests():
        users = [m.get("content") for m in entry["body"].get("messages", []) if m.get("role") == "user"]
        if users and isinstance(users[0], str) and marker in users[0]:
            found.append(entry)
    return found


def assert_instructions_follow_the_system_prompt(requests: list[dict[str, Any]], instructions: str) -> None:
    assert requests
    for entry in requests:
        first, second = entry["body"]["messages"][:2]
        assert first == {"role": "system", "content": SYSTEM_PROMPT} or first == {
            "role": "developer",
            "content": SYSTEM_PROMPT,
        }
        assert second["role"] in ("system", "developer") and second["content"] == instructions


def assert_tool_answer_sent_back(asked: dict[str, Any], answered: dict[str, Any], output: str) -> None:
    """The model's first answer called get_weather for Oslo; the next request carries the tool's output."""
    [call] = asked["tool_calls"]
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Oslo"}
    tool_message = answered["body"]["messages"][-1]
    assert tool_message == {"role": "tool", "tool_call_id": call["id"], "content": output}


def assert_tool_image_sent(standins: Any, marker: str, image: dict[str, Any], answer: str) -> None:
    """The model called the image tool (the request `marker` names), and the next request ends with
    the call's tool message, then the image (a Chat Completions `image_url` part) in a user message
    that names the call; the framework's answer is the model's echo of that message."""
    asking, answering = (entry["body"]["messages"] for entry in model_requests(standins, marker))
    assert isinstance(asking[-1]["content"], str) and image in answering[-1]["content"]
    tool, user = answering[-2:]
    heading = f"The output of tool call {tool['tool_call_id']}:"
    assert tool["role"] == "tool" and user["content"][0] == {"type": "text", "text": heading}
    assert answer == f"Echo #{len(answering) - 2}: {heading}"


def assert_schema_sent(sent: list[dict[str, Any]], name: str | None, properties: set[str]) -> None:
    """Each request asked for a JSON schema (named `name`, unless None) with these properties."""
    assert sent
    for body in sent:
        shape = body["response_format"]
        assert shape["type"] == "json_schema", shape
        assert name is None or shape["json_schema"]["name"] == name, shape
        assert set(shape["json_schema"]["schema"]["properties"]) == properties, shape


def doc_snippet(name: str) -> str:
    found = re.search(rf"<!-- framework: {re.escape(name)} -->\n```[a-z]+\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert found, f"docs/openai-compatible.md has no snippet for {name}"
    return found.group(1)


def script_block(script: str, comment: str) -> str:
    text = (SCRIPTS / script).read_text()
    found = re.search(
        rf"^{re.escape(comment)} docs: [a-z-]+\n(.*?)^\s*{re.escape(comment)} end docs\n", text, re.DOTALL | re.M
    )
    assert found, f"{script} has no docs block"
    return found.group(1)
