"""The README's picture of the chat page, taken in a real browser: Playwright drives Debian's
Chromium, headless, against the app served as scripts/run serves it (the page at `/`, the API under
/api, Azurite and the model stand-in behind). The model stand-in echoes the user's message, so a
message decides what the answer holds.
"""

from __future__ import annotations

import os
import re
import struct

import pytest
from playwright.sync_api import expect

from tests.support import ROOT
from tests.support.browser import Tab, conversation_list

pytestmark = pytest.mark.e2e

SCREENSHOT = ROOT / "docs" / "images" / "chat-page.png"
SCREENSHOT_SIZE = (1200, 760)


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
