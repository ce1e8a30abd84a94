"""Markup in the chat page in a real browser: Playwright drives Debian's Chromium, headless, against
the app served as scripts/run serves it (the page at `/`, the API under /api, Azurite and the model
stand-in behind). The model stand-in echoes the user's message, so a message decides what the
answer holds.

HTML in an answer stays inert text, streamed and read back from history, and the page's
Content-Security-Policy stops inline script on its own, without the sanitiser.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e


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
