"""A conversation in the chat page in a real browser: Playwright drives Debian's Chromium, headless,
against the app served as scripts/run serves it (the page at `/`, the API under /api, Azurite and
the model stand-in behind). The model stand-in echoes the user's message, so a message decides what
the answer holds.

An answer streamed in, the list after a reload, history and delete, a long conversation's earlier
messages, and the turns that go wrong: a 429, an answer lost on the way, a message over the limit.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from tests.support.browser import Tab, conversation_list, stored_messages
from tests.support.servers import AppServer, app_env

pytestmark = pytest.mark.e2e


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


# -- turns that go wrong ---------------------------------------------------------------------------


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
