"""The fixtures of the stand-ins' own tests: a pair of stand-ins a module, its journals cleared before
each test, no way out but loopback, and the environment a managed identity is given."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from standins import StandIns
from tests.support.standin_clients import managed_identity_env, refuse_outside_loopback


@pytest.fixture(scope="module")
def standins() -> Iterator[StandIns]:
    """A pair of this module's own, so clearing its journals never touches the session's."""
    with StandIns() as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_journals(standins: StandIns) -> None:
    standins.clear()


@pytest.fixture(autouse=True)
def blocked_connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Refuse every outbound connection except to loopback; return the refused addresses."""
    return refuse_outside_loopback(monkeypatch)


@pytest.fixture(autouse=True)
def identity_env(monkeypatch: pytest.MonkeyPatch, standins: StandIns) -> None:
    """The environment Azure Functions gives a managed identity, and nothing else credential-like."""
    managed_identity_env(monkeypatch, standins)
