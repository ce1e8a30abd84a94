"""The snippets of docs/openai-compatible.md run as written, against the app.

Each snippet is marked `<!-- snippet: NAME -->` before its code block. The base URL, the model and
the app's client ID are filled in; nothing else changes. The signed-in snippets run behind
stand-ins of the platform, as the app is deployed: Static Web Apps adds `x-ms-client-principal`
to a page's same-origin request, and App Service authentication checks an Entra ID bearer token
and adds the principal of whoever it was issued to.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys

import aiohttp
import pytest
from aiohttp import web

from tests.support import ROOT
from tests.support.ports import free_port

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

DOC = ROOT / "docs" / "openai-compatible.md"
LOCAL_URL = "http://127.0.0.1:7071/api/v1"
AZURE_URL = "https://<app>.azurewebsites.net/api/v1"
APP_ID_URI = "api://chat-docs-app"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}


def snippets() -> dict[str, str]:
    text = DOC.read_text()
    found = re.findall(r"<!-- snippet: ([a-z0-9-]+) -->\n```[a-z]+\n(.*?)```", text, flags=re.DOTALL)
    return dict(found)


def principal(user_id: str) -> str:
    claims = {"identityProvider": "aad", "userId": user_id, "userDetails": user_id, "userRoles": ["authenticated"]}
    return base64.b64encode(json.dumps(claims).encode()).decode()


def clean_env(**extra: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def run(command: list[str], code: str, env: dict[str, str]) -> str:
    finished = subprocess.run(
        [*command, code], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert finished.returncode == 0, finished.stderr
    return finished.stdout


def test_the_page_has_the_four_snippets():
    assert set(snippets()) == {"python-function-key", "js-function-key", "js-signed-in", "python-signed-in"}


def test_python_with_the_function_key(server):
    code = snippets()["python-function-key"].replace(LOCAL_URL, f"{server.url}/api/v1")
    out = run([sys.executable, "-c"], code, clean_env(FUNCTION_KEY="a-function-key"))
    lines = out.splitlines()
    assert lines[0] == "Echo #0: Hello, I am Ada."
    assert lines[1] == "Echo #2: Who am I?"
    assert lines[2] == "Tool result: 09:30"
    assert lines[3:] == [
        "user Hello, I am Ada.",
        "assistant Echo #0: Hello, I am Ada.",
        "user Who am I?",
        "assistant Echo #2: Who am I?",
    ]


def test_javascript_with_the_function_key(server):
    code = snippets()["js-function-key"].replace(LOCAL_URL, f"{server.url}/api/v1")
    out = run(["node", "--input-type=module", "-e"], code, clean_env(FUNCTION_KEY="a-function-key"))
    assert out.splitlines() == ["Echo #0: Hello, I am Ada.", "Echo #2: Who am I?", "Echo #4: And again?"]


def test_javascript_in_a_static_web_apps_page(trusted_server, tmp_path):
    # What the platform does for a signed-in user's same-origin request: the page's origin, and the
    # principal header on every call that reaches the linked API.
    platform = tmp_path / "static_web_app.mjs"
    platform.write_text(
        f"globalThis.location = {{ origin: {json.dumps(trusted_server.url)} }};\n"
        "const send = globalThis.fetch;\n"
        "globalThis.fetch = (input, init = {}) => {\n"
        "  const headers = new Headers(init.headers);\n"
        f"  headers.set('x-ms-client-principal', {json.dumps(principal('page-user'))});\n"
        "  return send(input, { ...init, headers });\n"
        "};\n"
    )
    code = snippets()["js-signed-in"]
    out = run(["node", "--import", platform.as_uri(), "--input-type=module", "-e"], code, clean_env())
    assert out.splitlines() == ["Echo #0: Hello from the page", "Echo #2: And on"]


@pytest.fixture
async def app_service_auth(trusted_server, standins):
    """App Service authentication in front of the app: a bearer token the identity provider issued
    for the app's ID URI becomes the principal of whom it was issued to; anything else is a 401."""
    seen: list[str] = []

    async def forward(request: web.Request) -> web.StreamResponse:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        grant = standins.identity.grant(token)
        if grant is None or not grant.is_valid_for(APP_ID_URI):
            return web.json_response({"code": 401, "message": "Unauthorized"}, status=401)
        seen.append(grant.client_id)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP | {"authorization"}}
        headers["x-ms-client-principal"] = principal(grant.client_id)
        async with session.request(
            request.method, trusted_server.url + request.rel_url.raw_path_qs, headers=headers, data=await request.read()
        ) as upstream:
            response = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP},
            )
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with aiohttp.ClientSession() as session:
        yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_python_as_the_signed_in_caller(app_service_auth, standins, trusted_server):
    url, seen = app_service_auth
    code = (
        snippets()["python-signed-in"].replace(AZURE_URL, f"{url}/api/v1").replace("api://<app client ID>", APP_ID_URI)
    )
    env = clean_env(IDENTITY_ENDPOINT=standins.identity_endpoint, IDENTITY_HEADER=standins.identity_header)
    out = await _run_off_loop([sys.executable, "-c"], code, env)
    assert out.splitlines() == ["Echo #0: Hello as myself"]
    # Every call came with a token for the app, issued to one identity: that caller is the owner.
    assert len(seen) == 2 and len(set(seen)) == 1
    async with aiohttp.ClientSession() as session:
        listing = await session.get(
            f"{trusted_server.url}/api/conversations", headers={"x-ms-client-principal": principal(seen[0])}
        )
        titles = [c["title"] for c in (await listing.json())["conversations"]]
    assert "Hello as myself" in titles


async def _run_off_loop(command: list[str], code: str, env: dict[str, str]) -> str:
    """Run a snippet while this loop keeps serving the stand-in it calls."""
    import anyio

    return await anyio.to_thread.run_sync(run, command, code, env)
