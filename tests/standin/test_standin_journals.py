"""What the stand-ins journal, read and cleared over HTTP, what they answer outside the API, and
`python -m standins`, which serves both and prints the environment."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from standins import AZURE_RESOURCE, StandIns
from tests.support.standin_clients import (
    HELLO,
    azure_openai,
    status_of,
)


def get_json(url: str | urllib.request.Request) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def test_journals_are_readable_and_clearable_over_http(standins: StandIns) -> None:
    async def scenario() -> None:
        async with azure_openai(standins) as client:
            await client.chat.completions.create(model=standins.deployment, messages=HELLO)

    asyncio.run(scenario())

    assert get_json(f"{standins.model_url}/_standin/requests") == standins.requests()
    assert get_json(f"{standins.identity_url}/_standin/token-requests") == standins.token_requests()
    assert status_of(urllib.request.Request(f"{standins.model_url}/_standin/clear", method="POST")) == 204
    assert standins.requests() == [] and standins.token_requests() == []


def test_unknown_paths_are_recorded_not_found(standins: StandIns) -> None:
    assert status_of(urllib.request.Request(f"{standins.model_url}/openai/engines")) == 404
    assert standins.requests()[0]["path"] == "/openai/engines"


def test_the_model_list_needs_the_same_credentials_and_is_not_journaled(standins: StandIns) -> None:
    models = f"{standins.model_url}/openai/models?api-version=2024-10-21"
    assert status_of(urllib.request.Request(models)) == 401
    assert status_of(urllib.request.Request(f"{standins.model_url}/v1/models")) == 401
    key = {"Authorization": f"Bearer {standins.openai_api_key}"}
    assert status_of(urllib.request.Request(f"{standins.model_url}/v1/models", headers=key)) == 200
    assert standins.model.models_requests == 1
    assert standins.requests() == []


def test_command_line_serves_both_and_prints_the_environment() -> None:
    root = Path(__file__).resolve().parents[2]
    command = [
        sys.executable,
        "-m",
        "standins",
        "--host",
        "127.0.0.1",
        "--model-port",
        "0",
        "--identity-port",
        "0",
    ]
    environment = {**os.environ, "PYTHONPATH": str(root)}
    with subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True, env=environment) as process:
        try:
            assert process.stdout is not None
            env = dict(process.stdout.readline().strip().split("=", 1) for _ in range(4))
            assert set(env) == {
                "IDENTITY_ENDPOINT",
                "IDENTITY_HEADER",
                "AZURE_OPENAI_ENDPOINT",
                "AZURE_OPENAI_CHAT_DEPLOYMENT",
            }
            token_url = f"{env['IDENTITY_ENDPOINT']}?api-version=2019-08-01&resource={AZURE_RESOURCE}"
            token = get_json(urllib.request.Request(token_url, headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]}))
            assert token["resource"] == AZURE_RESOURCE
            assert get_json(f"{env['AZURE_OPENAI_ENDPOINT']}/_standin/requests") == []
        finally:
            process.terminate()
