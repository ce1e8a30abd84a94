"""The README and local.settings.sample.json stay true to the code."""

from __future__ import annotations

import json
import re

from chat.settings import Settings
from tests.support import ROOT


def setting_names() -> set[str]:
    source = (ROOT / "chat" / "settings.py").read_text()
    return set(re.findall(r'"((?:AZURE|OPENAI|CHAT|APPLICATIONINSIGHTS)_[A-Z_]+)"', source)) - {"AZURE_OPENAI_API_KEY"}


def test_every_setting_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text()
    missing = {name for name in setting_names() if f"`{name}`" not in readme}
    assert not missing


def test_the_sample_settings_hold_every_setting_and_what_func_start_needs():
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    assert setting_names() <= set(values)
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert values["PYTHON_ENABLE_INIT_INDEXING"] == "1"


def test_the_sample_settings_parse_once_a_model_is_filled_in():
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    values.update(AZURE_OPENAI_ENDPOINT="https://example.openai.azure.com", AZURE_OPENAI_CHAT_DEPLOYMENT="gpt-4o-mini")
    settings = Settings.from_env(values)
    assert settings.storage.connection_string and settings.model_name == "gpt-4o-mini"


def test_readme_starts_with_the_two_commands():
    head = (ROOT / "README.md").read_text().split("\n## ")[0]
    assert "scripts/run" in head and "scripts/test" in head
