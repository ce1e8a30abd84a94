"""Debian's Chromium for the chat page's browser tests, driven by Playwright, headless, and a tab in
a fresh browser context that keeps what went wrong in it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from playwright.sync_api import Browser, Page, expect, sync_playwright

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
WAIT_MS = 20_000
expect.set_options(timeout=WAIT_MS)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Chromium launched for as long as the block runs, as a module's `browser` fixture holds it."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"The browser tests need Debian's Chromium at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


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


def conversation_list(page: Page):
    return page.get_by_role("navigation", name="Conversations").locator("li")


def stored_messages(page: Page, base_url: str, conversation_id: str):
    return page.request.get(f"{base_url}/api/conversations/{quote(conversation_id, safe='')}/messages")
