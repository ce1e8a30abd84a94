"""Settings: parsed once, and every missing or contradictory setting named."""

from __future__ import annotations

import pytest

from chat.engine.errors import ConfigurationError
from chat.settings import (
    DEVELOPMENT_STORAGE,
    AzureOpenAISettings,
    CompatibleModelSettings,
    Settings,
    auth_level_from_env,
)

AZURE = {
    "AZURE_OPENAI_ENDPOINT": "https://example.openai.azure.com",
    "AZURE_OPENAI_CHAT_DEPLOYMENT": "gpt-4o-mini",
    "CHAT_STORAGE_ENDPOINT": "https://example.table.core.windows.net",
}


def test_azure_defaults():
    settings = Settings.from_env(AZURE)
    assert settings.model == AzureOpenAISettings(
        endpoint="https://example.openai.azure.com", deployment="gpt-4o-mini", api_version="2024-10-21"
    )
    assert settings.client_id is None
    assert Settings.from_env({**AZURE, "AZURE_CLIENT_ID": "abc"}).client_id == "abc"
    assert settings.storage.endpoint == "https://example.table.core.windows.net"
    assert settings.history_token_budget == 32_000
    assert settings.max_message_chars == 100_000
    assert settings.trust_client_principal is False
    assert settings.uses_credential


def test_compatible_endpoint_only_without_azure():
    env = {
        "OPENAI_BASE_URL": "http://127.0.0.1:11434/v1",
        "OPENAI_MODEL": "llama3",
        "CHAT_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
    }
    settings = Settings.from_env(env)
    assert settings.model == CompatibleModelSettings(base_url="http://127.0.0.1:11434/v1", api_key=None, model="llama3")
    assert settings.storage.connection_string == DEVELOPMENT_STORAGE
    assert not settings.uses_credential
    assert isinstance(
        Settings.from_env({**env, **AZURE, "CHAT_STORAGE_CONNECTION_STRING": ""}).model, AzureOpenAISettings
    )


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"AZURE_OPENAI_ENDPOINT": ""}, "AZURE_OPENAI_ENDPOINT"),
        ({"AZURE_OPENAI_CHAT_DEPLOYMENT": ""}, "AZURE_OPENAI_CHAT_DEPLOYMENT"),
        ({"AZURE_OPENAI_ENDPOINT": "example.openai.azure.com"}, "AZURE_OPENAI_ENDPOINT"),
        ({"AZURE_OPENAI_API_KEY": "secret"}, "AZURE_OPENAI_API_KEY"),
        ({"CHAT_STORAGE_ENDPOINT": ""}, "CHAT_STORAGE_ENDPOINT"),
        ({"CHAT_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"}, "CHAT_STORAGE_CONNECTION_STRING"),
        ({"CHAT_HISTORY_TOKEN_BUDGET": "lots"}, "CHAT_HISTORY_TOKEN_BUDGET"),
        ({"CHAT_HISTORY_TOKEN_BUDGET": "-1"}, "CHAT_HISTORY_TOKEN_BUDGET"),
        ({"CHAT_MAX_MESSAGE_CHARS": "0"}, "CHAT_MAX_MESSAGE_CHARS"),
        ({"CHAT_MAX_MESSAGE_CHARS": "150001"}, "CHAT_MAX_MESSAGE_CHARS"),
        ({"CHAT_TRUST_CLIENT_PRINCIPAL": "maybe"}, "CHAT_TRUST_CLIENT_PRINCIPAL"),
        ({"CHAT_MODEL_TIMEOUT_SECONDS": "soon"}, "CHAT_MODEL_TIMEOUT_SECONDS"),
        ({"CHAT_MODEL_MAX_RETRIES": "11"}, "CHAT_MODEL_MAX_RETRIES"),
        ({"CHAT_TABLE_PREFIX": "bad-prefix"}, "CHAT_TABLE_PREFIX"),
        ({"CHAT_MAX_ANSWER_TOKENS": "0"}, "CHAT_MAX_ANSWER_TOKENS"),
        ({"CHAT_MAX_ANSWER_TOKENS": "many"}, "CHAT_MAX_ANSWER_TOKENS"),
        ({"CHAT_DAILY_TOKEN_QUOTA": "1000"}, "CHAT_MAX_ANSWER_TOKENS"),
        ({"CHAT_DAILY_TOKEN_QUOTA": "500", "CHAT_MAX_ANSWER_TOKENS": "500"}, "CHAT_DAILY_TOKEN_QUOTA"),
    ],
)
def test_bad_settings_are_named(change, named):
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({**AZURE, **change})
    assert named in caught.value.message
    assert "secret" not in caught.value.message


def test_the_answer_cap_is_always_set_with_a_quota_and_only_when_asked_without():
    assert Settings.from_env(AZURE).max_answer_tokens is None
    assert Settings.from_env({**AZURE, "CHAT_MAX_ANSWER_TOKENS": "800"}).max_answer_tokens == 800
    with_quota = Settings.from_env({**AZURE, "CHAT_DAILY_TOKEN_QUOTA": "100000"})
    assert (with_quota.daily_token_quota, with_quota.max_answer_tokens) == (100_000, 4_096)
    capped = Settings.from_env({**AZURE, "CHAT_DAILY_TOKEN_QUOTA": "200", "CHAT_MAX_ANSWER_TOKENS": "50"})
    assert capped.max_answer_tokens == 50


def test_compatible_endpoint_needs_a_model():
    with pytest.raises(ConfigurationError, match="OPENAI_MODEL"):
        Settings.from_env({"OPENAI_BASE_URL": "http://127.0.0.1:1/v1", "CHAT_STORAGE_ENDPOINT": "https://x"})


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("TRUE", True), ("1", True), ("no", False), ("", False)])
def test_booleans_parse_once(raw, value):
    env = {**AZURE, "CHAT_TRUST_CLIENT_PRINCIPAL": raw, "WEBSITE_AUTH_ENABLED": "True"}
    assert Settings.from_env(env).trust_client_principal is value


@pytest.mark.parametrize("platform", [None, "", "False", "false", "1", "yes", "enabled"])
def test_trust_mode_is_refused_without_app_service_authentication(platform):
    env = {**AZURE, "CHAT_TRUST_CLIENT_PRINCIPAL": "true"}
    if platform is not None:
        env["WEBSITE_AUTH_ENABLED"] = platform
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(env)
    assert "CHAT_TRUST_CLIENT_PRINCIPAL" in caught.value.message
    assert "WEBSITE_AUTH_ENABLED" in caught.value.message


@pytest.mark.parametrize("platform", ["True", "true", " TRUE "])
def test_trust_mode_behind_app_service_authentication(platform):
    env = {**AZURE, "CHAT_TRUST_CLIENT_PRINCIPAL": "true", "WEBSITE_AUTH_ENABLED": platform}
    assert Settings.from_env(env).trust_client_principal is True


@pytest.mark.parametrize("platform", [None, "False", "True"])
def test_without_trust_app_service_authentication_is_not_needed(platform):
    env = {**AZURE, "CHAT_TRUST_CLIENT_PRINCIPAL": "false"}
    if platform is not None:
        env["WEBSITE_AUTH_ENABLED"] = platform
    assert Settings.from_env(env).trust_client_principal is False


def test_auth_level():
    assert auth_level_from_env({}) == "function"
    assert auth_level_from_env({"CHAT_AUTH_LEVEL": "Anonymous"}) == "anonymous"
    with pytest.raises(ConfigurationError, match="CHAT_AUTH_LEVEL"):
        auth_level_from_env({"CHAT_AUTH_LEVEL": "everyone"})


def test_callers_instructions_are_taken_in_every_mode_unless_refused():
    trusted = {**AZURE, "CHAT_TRUST_CLIENT_PRINCIPAL": "true", "WEBSITE_AUTH_ENABLED": "True"}
    assert Settings.from_env(AZURE).refuse_instructions is False
    assert Settings.from_env(trusted).refuse_instructions is False
    assert Settings.from_env({**trusted, "CHAT_REFUSE_INSTRUCTIONS": "true"}).refuse_instructions is True


def test_the_blob_service_is_the_storage_accounts_own_unless_named():
    storage = Settings.from_env(AZURE).storage
    assert storage.blob_endpoint == "https://example.blob.core.windows.net" and storage.has_blobs
    assert storage.container == "chatturns"
    named = Settings.from_env({**AZURE, "CHAT_BLOB_ENDPOINT": "https://other.blob.core.windows.net"}).storage
    assert named.blob_endpoint == "https://other.blob.core.windows.net"
    # An endpoint that is not Azure's table service names no blob service: big turns are refused.
    local = Settings.from_env({**AZURE, "CHAT_STORAGE_ENDPOINT": "https://127.0.0.1:10002/devstoreaccount1"})
    assert local.storage.blob_endpoint is None and not local.storage.has_blobs
    with pytest.raises(ConfigurationError, match="CHAT_BLOB_ENDPOINT"):
        Settings.from_env({**AZURE, "CHAT_BLOB_ENDPOINT": "not a url"})


def test_a_connection_string_names_its_blob_service_or_none():
    base = {k: v for k, v in AZURE.items() if k != "CHAT_STORAGE_ENDPOINT"}
    development = Settings.from_env({**base, "CHAT_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"})
    assert development.storage.connection_string == DEVELOPMENT_STORAGE and development.storage.has_blobs
    tables_only = "AccountName=a;AccountKey=a2V5;TableEndpoint=http://127.0.0.1:1/a;"
    assert not Settings.from_env({**base, "CHAT_STORAGE_CONNECTION_STRING": tables_only}).storage.has_blobs
