"""The local host serves the chat page at `/` with the headers Static Web Apps would send, and
nothing else outside /api: the API's routes and errors stay as they were."""

from __future__ import annotations

import re

import pytest

from tests.support.page import CONFIG, WEB

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


async def test_the_page_is_served_at_the_root_with_the_static_web_app_headers(api):
    status, headers, body = await api.raw("GET", "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert body == (WEB / "index.html").read_bytes()
    for name, value in CONFIG["globalHeaders"].items():
        assert headers[name] == value, name


async def test_every_file_the_page_names_is_served_with_a_type_a_browser_runs(api):
    html = (WEB / "index.html").read_text(encoding="utf-8")
    named = re.findall(r'(?:src|href)="([^"#?]+)', html)
    local = ["/" + path for path in named if not path.startswith("/")]
    scripts = ["/js/" + p.name for p in (WEB / "js").glob("*.js")] + [
        "/vendor/" + p.name for p in (WEB / "vendor").glob("*.js")
    ]
    assert "/js/app.js" in local and "/app.css" in local
    for path in local + scripts:
        status, headers, body = await api.raw("GET", path)
        assert status == 200, path
        assert body == (WEB / path.lstrip("/")).read_bytes(), path
        if path.endswith(".js"):
            # A module script in another type is refused by the browser (strict MIME checking).
            assert headers["Content-Type"] == "text/javascript; charset=utf-8", path
        assert headers["X-Content-Type-Options"] == "nosniff", path


async def test_a_head_request_has_the_headers_and_no_body(api):
    status, headers, body = await api.raw("HEAD", "/")
    assert status == 200
    assert headers["Content-Security-Policy"] == CONFIG["globalHeaders"]["Content-Security-Policy"]
    assert body == b""


@pytest.mark.parametrize(
    "path",
    [
        "/staticwebapp.config.json",  # the platform's, never served
        "/index.htm",
        "/js",
        "/js/",
        "/../chat/local.py",
        "/%2e%2e/chat/local.py",
        "/js/..%2f..%2fchat/local.py",
        "//index.html",
        "/.auth/me",  # there is no sign-in locally: the page copes
    ],
)
async def test_a_path_that_is_no_file_of_the_page_is_the_api_json_404(api, path):
    reply = await api.request("GET", path, content_type=None)
    assert reply.status == 404 and reply.error_code == "not_found"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_a_method_the_page_has_no_use_for_is_a_json_405_and_stores_nothing(api, method):
    before = await api.conversations(limit=200)
    reply = await api.request(method, "/", json_body={"messages": [{"role": "user", "content": "a turn?"}]})
    assert reply.status == 405 and reply.error_code == "method_not_allowed"
    assert reply.headers["Allow"] == "GET, HEAD"
    assert (await api.conversations(limit=200)).body == before.body


async def test_the_api_is_unchanged_beside_the_page(api):
    reply = await api.request("GET", "/api/nothing-here")
    assert reply.status == 404 and reply.error_code == "not_found"
    assert "Content-Security-Policy" not in reply.headers
    turn = await api.chat("Hello beside the page")
    assert turn.status == 200 and turn.body["message"]["content"] == "Echo #0: Hello beside the page"
