"""Who the chat page says is signed in, in a real browser: Playwright drives Debian's Chromium,
headless, against the app served as scripts/run serves it (the page at `/`, the API under /api,
Azurite and the model stand-in behind). The model stand-in echoes the user's message, so a message
decides what the answer holds.

Static Web Apps cannot run here. Where a test needs what it adds, the signed-in user of /.auth/me
and the x-ms-client-principal header it puts on every API request, the browser's own request
routing stands in for it, against an app that trusts the header as it does behind the platform.
"""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from playwright.sync_api import Route, expect

from tests.support.browser import Tab, conversation_list

pytestmark = pytest.mark.e2e


def test_locally_the_page_names_the_local_developer_and_offers_no_sign_out(tab):
    page = tab.open()
    expect(page.locator("#user")).to_have_text("Local developer")
    expect(page.get_by_role("link", name="Sign out")).to_be_hidden()


# -- behind Static Web Apps ------------------------------------------------------------------------


def principal_header(user_id: str, name: str) -> str:
    document = {"identityProvider": "github", "userId": user_id, "userDetails": name, "userRoles": ["authenticated"]}
    return base64.b64encode(json.dumps(document).encode()).decode()


def as_static_web_apps(tab: Tab, user_id: str | None, name: str = "") -> None:
    """What Static Web Apps does for the page: answer /.auth/me, and put the signed-in user on
    every API request (a signed-out visitor gets neither)."""
    principal = None
    if user_id is not None:
        principal = {
            "identityProvider": "github",
            "userId": user_id,
            "userDetails": name,
            "userRoles": ["authenticated"],
        }

    def me(route: Route) -> None:
        route.fulfill(status=200, content_type="application/json", body=json.dumps({"clientPrincipal": principal}))

    def api(route: Route) -> None:
        headers = dict(route.request.headers)
        if user_id is not None:
            headers["x-ms-client-principal"] = principal_header(user_id, name)
        route.continue_(headers=headers)

    tab.page.route("**/.auth/me", me)
    tab.page.route("**/api/**", api)


def test_behind_static_web_apps_the_page_shows_the_user_and_their_own_conversations(browser, trusted_server):
    ada, grace = Tab(browser, trusted_server.url), Tab(browser, trusted_server.url)
    try:
        as_static_web_apps(ada, f"ada-{uuid.uuid4().hex}", "ada@example.com")
        as_static_web_apps(grace, f"grace-{uuid.uuid4().hex}", "grace@example.com")
        page = ada.open()
        expect(page.locator("#user")).to_have_text("ada@example.com")
        sign_out = page.get_by_role("link", name="Sign out")
        expect(sign_out).to_be_visible()
        assert sign_out.get_attribute("href").startswith("/.auth/logout")
        ada.send("Ada's own question")
        assert ada.answered() == "Echo #0: Ada's own question"
        expect(conversation_list(page)).to_have_count(1)

        other = grace.open()
        expect(other.locator("#user")).to_have_text("grace@example.com")
        expect(other.locator("#list-status")).to_have_text("No conversations yet.")
    finally:
        ada.close()
        grace.close()
    assert ada.errors == [] and grace.errors == []


def test_signed_out_the_page_says_so_and_offers_to_sign_in(browser, trusted_server):
    tab = Tab(browser, trusted_server.url)
    try:
        as_static_web_apps(tab, None)
        page = tab.open()
        expect(page.locator("#user")).to_have_text("Signed out")
        expect(page.get_by_role("alert")).to_contain_text("You are signed out")
        sign_in = page.get_by_role("alert").get_by_role("link", name="Sign in again")
        expect(sign_in).to_be_visible()
        assert sign_in.get_attribute("href").startswith("/.auth/login/")

        tab.send("Anyone there?")
        expect(page.get_by_role("alert")).to_contain_text("You are signed out")
        expect(page.get_by_role("textbox", name="Message")).to_have_value("Anyone there?")
    finally:
        tab.close()
    assert tab.errors == []


def test_a_sign_in_redirect_from_the_platform_reads_as_signed_out(browser, page_server):
    """Behind Static Web Apps a signed-out request is redirected to the sign-in page (the 401
    override in staticwebapp.config.json), which fetch cannot follow to another site."""
    tab = Tab(browser, page_server.url)
    try:
        tab.page.route(
            lambda url: "/api/conversations?" in url,
            lambda route: route.fulfill(status=302, headers={"Location": "/.auth/login/aad"}),
        )
        page = tab.open()
        expect(page.get_by_role("alert")).to_contain_text("You are signed out")
        expect(page.locator("#list-status")).to_have_text("The conversations could not be loaded.")
    finally:
        tab.close()
    assert tab.errors == []
