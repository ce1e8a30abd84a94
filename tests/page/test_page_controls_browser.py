"""The chat page's controls in a real browser: Playwright drives Debian's Chromium, headless, against
the app served as scripts/run serves it (the page at `/`, the API under /api, Azurite and the model
stand-in behind). The model stand-in echoes the user's message, so a message decides what the
answer holds.

Keyboard alone (Enter sends, Shift+Enter breaks a line, Tab reaches every control with a visible
focus ring) and phone width, where the list folds behind a button.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.support.browser import Tab, conversation_list

pytestmark = pytest.mark.e2e


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
