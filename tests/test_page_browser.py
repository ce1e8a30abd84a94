"""The chat page in a real browser: Playwright drives Debian's Chromium, headless, against the app
served as scripts/run serves it (the page at `/`, the API under /api, Azurite and the model stand-in
behind). The model stand-in echoes the user's message, so a message decides what the answer holds.

Static Web Apps cannot run here. Where a test needs what it adds, the signed-in user of /.auth/me
and the x-ms-client-principal header it puts on every API request, the browser's own request
routing stands in for it, against an app that trusts the header as it does behind the platform.
"""

from __future__ import annotations

import base64
import json
import os
import re
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.support import ROOT
from tests.support.servers import AppServer, app_env

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = ROOT / "docs" / "images" / "chat-page.png"
SCREENSHOT_SIZE = (1200, 760)
WAIT_MS = 20_000
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        raise RuntimeError(f"The browser tests need Debian's Chromium at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def page_server(standins, azurite):
    """The app with tables of its own, so the page's list holds only these tests' conversations."""
    instance = AppServer(app_env(standins, azurite.connection_string)).start()
    yield instance
    instance.stop()


class Tab:
    """A page in a fresh browser context, with what went wrong in it: uncaught errors, and
    Content-Security-Policy violations (the page itself must cause none)."""

    def __init__(self, browser: Browser, base_url: str, **context_options) -> None:
        self.base_url = base_url
        self.context = browser.new_context(**context_options)
        self.context.set_default_timeout(WAIT_MS)
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("dialog", lambda dialog: dialog.accept())

    def open(self, path: str = "/") -> Page:
        self.page.goto(self.base_url + path)
        self.page.wait_for_selector("body[data-ready=true]", state="attached")
        return self.page

    def send(self, text: str) -> None:
        box = self.page.get_by_role("textbox", name="Message")
        box.fill(text)
        box.press("Enter")

    def answered(self) -> str:
        """The text of the newest answer, once it is complete."""
        answer = self.page.locator(".message.assistant").last
        expect(answer).not_to_have_attribute("aria-busy", "true")
        return answer.locator(".content").inner_text()

    def clear(self) -> Tab:
        """Delete every conversation of the local owner, so a test starts from an empty list."""
        while listing := self.context.request.get(self.base_url + "/api/conversations").json()["conversations"]:
            for conversation in listing:
                url = f"{self.base_url}/api/conversations/{quote(conversation['id'], safe='')}"
                assert self.context.request.delete(url).status == 204
        return self

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser, page_server) -> Iterator[Tab]:
    instance = Tab(browser, page_server.url).clear()
    yield instance
    instance.close()
    assert instance.errors == []


def conversation_list(page: Page):
    return page.get_by_role("navigation", name="Conversations").locator("li")


def stored_messages(page: Page, base_url: str, conversation_id: str):
    return page.request.get(f"{base_url}/api/conversations/{quote(conversation_id, safe='')}/messages")


def test_an_answer_streams_in_then_the_conversation_is_listed_opened_and_deleted(tab, page_server):
    page = tab.open()
    expect(page.locator("#list-status")).to_have_text("No conversations yet.")
    words = "one two three four five six seven eight nine ten"
    tab.send(f"Count {words} [[chunk-delay:150]]")

    # Part of the answer is on the page while the rest is still coming.
    page.wait_for_function(
        """() => {
            const answer = document.querySelector('.message.assistant[aria-busy="true"] .content');
            return answer !== null && answer.textContent.includes('Echo #0') && !answer.textContent.includes('ten');
        }"""
    )
    assert tab.answered() == f"Echo #0: Count {words} [[chunk-delay:150]]"
    conversation_id = page.evaluate("() => decodeURIComponent(location.hash.slice(1))")
    assert re.fullmatch(r"[A-Za-z0-9_-]{24}", conversation_id)

    page.goto(page_server.url + "/")
    page.wait_for_selector("body[data-ready=true]", state="attached")
    expect(page.locator("#messages > li")).to_have_count(0)
    listed = conversation_list(page)
    expect(listed).to_have_count(1)
    expect(listed.locator(".title")).to_have_text(f"Count {words} [[chunk-delay:150]]")

    listed.get_by_role("button", name=re.compile("^Count")).click()
    history = page.locator("#messages > li")
    expect(history).to_have_count(2)
    expect(history.nth(0)).to_have_class(re.compile(r"\buser\b"))
    expect(history.nth(0).locator(".content")).to_have_text(f"Count {words} [[chunk-delay:150]]")
    expect(history.nth(1).locator(".content")).to_have_text(f"Echo #0: Count {words} [[chunk-delay:150]]")
    expect(page.locator("#conversation-title")).to_have_text(f"Count {words} [[chunk-delay:150]]")

    # A second turn continues the same conversation: the model saw the first.
    tab.send("And again")
    assert tab.answered() == "Echo #2: And again"
    expect(conversation_list(page)).to_have_count(1)

    listed.get_by_role("button", name=re.compile("^Delete")).click()
    expect(conversation_list(page)).to_have_count(0)
    expect(page.locator("#messages > li")).to_have_count(0)
    expect(page.locator("#conversation-title")).to_have_text("New conversation")
    assert stored_messages(page, page_server.url, conversation_id).status == 404
    page.reload()
    page.wait_for_selector("body[data-ready=true]", state="attached")
    expect(page.locator("#list-status")).to_have_text("No conversations yet.")


def test_a_long_conversation_opens_at_its_newest_messages_and_shows_earlier_ones_on_request(tab, page_server):
    def turn(text: str, session: str | None = None) -> str:
        body = {"messages": [{"role": "user", "content": text}], **({"sessionState": session} if session else {})}
        reply = tab.context.request.post(
            page_server.url + "/api/chat", data=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        assert reply.status == 200
        return reply.json()["sessionState"]

    session = turn("turn 0")
    for n in range(1, 26):
        turn(f"turn {n}", session)  # 26 turns, 52 messages: one page of 50 and two more

    page = tab.open("/#" + quote(session, safe=""))
    shown = page.locator("#messages > li .content")
    expect(shown).to_have_count(50)
    expect(shown.first).to_have_text("turn 1")
    expect(shown.last).to_have_text("Echo #50: turn 25")
    earlier = page.get_by_role("button", name="Show earlier messages")
    earlier.click()
    expect(shown).to_have_count(52)
    expect(shown.first).to_have_text("turn 0")
    expect(shown.nth(2)).to_have_text("turn 1")
    expect(earlier).to_be_hidden()


HOSTILE = (
    "<img src=x onerror=\"window.__onerror = 1; document.title = 'pwned'\"> "
    "<script>window.__script = 1; document.title = 'ran'</script> "
    "[a link](javascript:window.__link=1) and **bold**"
)


def assert_inert(page: Page) -> None:
    answer = page.locator(".message.assistant .content").last
    text = answer.inner_text()
    assert '<img src=x onerror="window.__onerror = 1;' in text
    assert "<script>window.__script = 1;" in text
    assert answer.locator("img, script, iframe, [onerror]").count() == 0
    expect(answer.locator("strong")).to_have_text("bold")
    link = answer.get_by_text("a link")
    assert not (link.get_attribute("href") or "").lower().startswith("javascript")
    link.click()  # a link that kept its javascript: URL would run it now
    state = page.evaluate("() => [window.__onerror, window.__script, window.__link, document.title]")
    assert state[:3] == [None, None, None]
    assert state[3] not in ("pwned", "ran")


def test_html_in_an_answer_stays_inert_text_streamed_and_from_history(tab, page_server):
    page = tab.open()
    tab.send(HOSTILE)
    tab.answered()
    assert_inert(page)

    page.reload()
    page.wait_for_selector("body[data-ready=true]", state="attached")
    expect(page.locator(".message.assistant")).to_have_count(1)  # reopened from the address
    assert_inert(page)


def test_the_content_security_policy_stops_inline_script_on_its_own(tab):
    """A second line of defence, tried without the sanitiser: markup put straight into the page."""
    page = tab.open()
    outcome = page.evaluate(
        """async () => {
            const violations = [];
            document.addEventListener('securitypolicyviolation', (e) => violations.push(e.effectiveDirective));
            const refused = [];
            const attempt = (name, action) => {
                try {
                    action();
                } catch (error) {
                    if (error instanceof TypeError) refused.push(name);
                    else throw error;
                }
            };
            attempt('html string', () => {
                document.body.insertAdjacentHTML('beforeend', '<img src=x onerror="window.__fired = 1">');
            });
            attempt('handler attribute', () => {
                const img = document.createElement('img');
                img.setAttribute('onerror', 'window.__fired = 2');
                img.src = 'data:,not-an-image';
                document.body.append(img);
            });
            attempt('inline script', () => {
                const script = document.createElement('script');
                script.textContent = 'window.__fired = 3';
                document.body.append(script);
            });
            // Give a handler that was let through the time to fire: an image error is asynchronous.
            await new Promise((resolve) => setTimeout(resolve, 300));
            return { refused, fired: window.__fired ?? null, violations };
        }"""
    )
    assert outcome["fired"] is None, outcome
    assert "html string" in outcome["refused"], outcome
    # Each of the other two is refused outright (Trusted Types) or blocked and reported (script-src).
    assert len(outcome["refused"]) + len(outcome["violations"]) >= 3, outcome


def test_a_rate_limited_turn_says_so_and_gives_the_message_back(tab, page_server):
    page = tab.open()
    tab.send("[[429]] are you there?")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("busy with too many requests")
    expect(alert).to_contain_text("Try again in 7 seconds")
    expect(page.get_by_role("textbox", name="Message")).to_have_value("[[429]] are you there?")
    expect(page.locator("#messages > li")).to_have_count(0)
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    listing = page.request.get(page_server.url + "/api/conversations").json()
    assert listing["conversations"] == []


def test_a_turn_whose_answer_was_lost_on_the_way_is_shown_once_when_sent_again(tab, page_server):
    page = tab.open()
    keys: list[str] = []

    def lose_the_answer(route):
        keys.append(route.request.headers.get("idempotency-key", ""))
        if len(keys) == 1:
            route.fetch()  # the server stores the turn; its answer never reaches the page
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/api/chat/stream", lose_the_answer)
    tab.send("Lost on the way")
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_role("textbox", name="Message")).to_have_value("Lost on the way")
    expect(page.locator("#messages > li")).to_have_count(0)

    page.get_by_role("button", name="Send").click()
    assert tab.answered() == "Echo #0: Lost on the way"
    assert len(keys) == 2 and keys[0] == keys[1] and re.fullmatch(r"[0-9a-f-]{36}", keys[0])
    conversation_id = page.evaluate("() => decodeURIComponent(location.hash.slice(1))")
    stored = stored_messages(page, page_server.url, conversation_id).json()["messages"]
    assert [m["content"] for m in stored] == ["Lost on the way", "Echo #0: Lost on the way"]

    # A new message gets a key of its own.
    tab.send("And a new one")
    assert tab.answered() == "Echo #2: And a new one"
    assert len(keys) == 3 and keys[2] != keys[0]


def test_a_message_over_the_limit_says_it_is_too_long(browser, standins, azurite):
    server = AppServer(app_env(standins, azurite.connection_string, CHAT_MAX_MESSAGE_CHARS="20")).start()
    tab = Tab(browser, server.url)
    try:
        page = tab.open()
        tab.send("This message is longer than twenty characters.")
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("Your message is too long")
        expect(alert).to_contain_text("the limit is 20")
        assert page.request.get(server.url + "/api/conversations").json()["conversations"] == []
    finally:
        tab.close()
        server.stop()
    assert tab.errors == []


def test_keyboard_alone_enter_sends_shift_enter_breaks_and_tab_reaches_everything(tab):
    page = tab.open()
    box = page.get_by_role("textbox", name="Message")
    expect(box).to_be_focused()
    box.press_sequentially("line one")
    box.press("Shift+Enter")
    box.press_sequentially("line two")
    expect(page.locator("#messages > li")).to_have_count(0)
    box.press("Enter")
    tab.answered()
    expect(page.locator(".message.user .content")).to_have_text("line one\nline two")

    # Tab from the message box round the whole page (past the browser's own controls) and back.
    reached: list[list] = []
    while len(reached) < 20 and not ("skip" in [name for name, _ in reached] and reached[-1][0] == "send"):
        page.keyboard.press("Tab")
        reached.append(
            page.evaluate(
                """() => {
                    const el = document.activeElement;
                    const style = getComputedStyle(el);
                    const outlined = style.outlineStyle !== 'none' && style.outlineWidth !== '0px';
                    return [el.id || el.className || el.tagName, outlined];
                }"""
            )
        )
    reached = [step for step in reached if step[0] != "BODY"]  # focus out in the browser's controls
    names = [name for name, _ in reached]
    for wanted in ("skip", "new-conversation", "open", "delete", "message", "send"):
        assert wanted in names, (wanted, names)
    assert all(visible for _, visible in reached), reached

    # Delete by keyboard: focus moves on to something still there.
    page.locator(".conversations .delete").first.focus()
    page.keyboard.press("Enter")
    expect(conversation_list(page)).to_have_count(0)
    expect(page.locator("#new-conversation")).to_be_focused()


def test_at_phone_width_the_list_folds_behind_a_button(browser, page_server):
    tab = Tab(browser, page_server.url, viewport={"width": 375, "height": 740}).clear()
    try:
        page = tab.open()
        tab.send("Hello from a phone")
        tab.answered()
        toggle = page.get_by_role("button", name="Conversations")
        sidebar = page.get_by_role("navigation", name="Conversations")
        expect(toggle).to_be_visible()
        expect(sidebar).to_be_hidden()
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 375

        toggle.click()
        expect(sidebar).to_be_visible()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        page.keyboard.press("Escape")
        expect(sidebar).to_be_hidden()
        expect(toggle).to_be_focused()

        toggle.press("Enter")
        expect(sidebar).to_be_visible()
        sidebar.get_by_role("button", name=re.compile("^Hello from a phone")).click()
        expect(sidebar).to_be_hidden()
        expect(page.locator("#messages > li")).to_have_count(2)
    finally:
        tab.close()
    assert tab.errors == []


def test_locally_the_page_names_the_local_developer_and_offers_no_sign_out(tab):
    page = tab.open()
    expect(page.locator("#user")).to_have_text("Local developer")
    expect(page.get_by_role("link", name="Sign out")).to_be_hidden()


# -- behind Static Web Apps ----------------------------------------------------------------------


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


# -- the README's picture ------------------------------------------------------------------------


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_the_readme_screenshot(browser, page_server, tmp_path):
    """Takes the README's picture of the page. UPDATE_SCREENSHOT=1 writes it to docs/images/;
    otherwise it goes to a temporary folder and the committed one is checked to be there."""
    tab = Tab(browser, page_server.url, viewport={"width": SCREENSHOT_SIZE[0], "height": SCREENSHOT_SIZE[1]}).clear()
    try:
        page = tab.open()
        tab.send("What can you do?")
        tab.answered()
        tab.send(
            "Markdown, safely: **bold**, `code`, and\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
            "```python\nprint('hello')\n```\n\nand <b>HTML</b> shown as text."
        )
        tab.answered()
        page.get_by_role("button", name="New conversation").click()
        tab.send("A second conversation")
        tab.answered()
        conversation_list(page).get_by_role("button", name=re.compile("^What can you do")).click()
        expect(page.locator("#messages > li")).to_have_count(4)
        expect(page.locator(".message.assistant table")).to_have_count(1)
        page.get_by_role("textbox", name="Message").fill("And a list?")
        target = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") == "1" else tmp_path / "chat-page.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(target))
        assert png_size(target.read_bytes()) == SCREENSHOT_SIZE
    finally:
        tab.close()
    assert tab.errors == []
    assert png_size(SCREENSHOT.read_bytes()) == SCREENSHOT_SIZE
