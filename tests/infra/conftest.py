"""The fixtures of the infrastructure's tests: infra/ read once a module, and main.bicep in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.infra import MAIN, infra_files


@pytest.fixture(scope="module")
def files() -> dict[Path, object]:
    return infra_files()


@pytest.fixture(scope="module")
def main(files):
    return files[MAIN]
