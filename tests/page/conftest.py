"""The fixtures of the page's browser tests: Debian's Chromium and the app a module, and a tab a test
that must end with no error in the page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from tests.support.browser import Tab, chromium
from tests.support.servers import AppServer, app_env


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as instance:
        yield instance


@pytest.fixture(scope="module")
def page_server(standins, azurite):
    """The app with tables of its own, so the page's list holds only these tests' conversations."""
    instance = AppServer(app_env(standins, azurite.connection_string)).start()
    yield instance
    instance.stop()


@pytest.fixture
def tab(browser, page_server) -> Iterator[Tab]:
    instance = Tab(browser, page_server.url).clear()
    yield instance
    instance.close()
    assert instance.errors == []
