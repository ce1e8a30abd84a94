"""Settings, parsed once from the environment into a frozen object.

The names are the same as app settings in Azure and `Values` in local.settings.json. Every error
names the variable at fault; nothing else in the package reads `os.environ`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from chat.engine.errors import ConfigurationError

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant. Answer clearly and concisely."
DEFAULT_API_VERSION = "2024-10-21"
DEFAULT_HISTORY_TOKEN_BUDGET = 32_000
DEFAULT_MAX_MESSAGE_CHARS = 100_000
# A user message and the longest answer must fit one entity group transaction (4 MiB on Azure).
# The SDK escapes every non-ASCII UTF-16 unit as \uXXXX, so a character can cost 12 bytes on the
# wire; 150,000 characters (1.8 MB at worst) leaves more than 2 MB for the answer.
MAX_MESSAGE_CHARS_LIMIT = 150_000
# The answer cap with a daily quota: every turn reserves it. Within every current chat model's
# output limit (gpt-35-turbo's is 4,096), and about 16,000 characters of English.
DEFAULT_MAX_ANSWER_TOKENS = 4_096
DEFAULT_MODEL_TIMEOUT_SECONDS = 60.0
DEFAULT_STORAGE_TIMEOUT_SECONDS = 10.0
DEFAULT_MODEL_MAX_RETRIES = 2
DEFAULT_TABLE_PREFIX = "chat"
AUTH_LEVELS = ("anonymous", "function", "admin")
QUEUE_CONNECTION = "CHAT_QUEUE"  # the queue trigger's connection: CHAT_QUEUE__queueServiceUri in Azure
QUEUE_SERVICE_URI = f"{QUEUE_CONNECTION}__queueServiceUri"
# `UseDevelopmentStorage=true` means Azurite on its default port; azure-data-tables does not
# understand the shorthand, so it is expanded here. The key is Azurite's published development key.
DEVELOPMENT_STORAGE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class AzureOpenAISettings:
    """Azure OpenAI with Entra ID auth: never an API key."""

    endpoint: str
    deployment: str
    api_version: str


@dataclass(frozen=True)
class CompatibleModelSettings:
    """Any OpenAI-compatible endpoint (OpenAI, Ollama, a local server)."""

    base_url: str
    api_key: str | None
    model: str


@dataclass(frozen=True)
class StorageSettings:
    endpoint: str | None  # keyless, with the app's credential
    connection_string: str | None  # Azurite or a SAS connection string
    table_prefix: str
    timeout_seconds: float = DEFAULT_STORAGE_TIMEOUT_SECONDS  # one storage request, its retries included
    # Blob Storage in the same account, for turns too big for one Table transaction (keyless, as
    # the tables); None with a connection string, which names its own BlobEndpoint, or none.
    blob_endpoint: str | None = None
    queue_endpoint: str | None = None  # background responses' queue, keyless (CHAT_QUEUE__queueServiceUri)
    queue_name: str = "chat-responses"

    @property
    def has_queue(self) -> bool:
        if self.connection_string is None:
            return self.queue_endpoint is not None
        return "queueendpoint=" in self.connection_string.replace(" ", "").lower()

    @property
    def container(self) -> str:
        """The blob container of turns too big for one transaction."""
        return f"{self.table_prefix.lower()}turns"

    @property
    def has_blobs(self) -> bool:
        if self.connection_string is None:
            return self.blob_endpoint is not None
        return "blobendpoint=" in self.connection_string.replace(" ", "").lower()


@dataclass(frozen=True)
class TelemetrySettings:
    """Application Insights through Azure Monitor OpenTelemetry; Entra ID auth when asked for."""

    connection_string: str
    entra_auth: bool
    client_id: str | None


@dataclass(frozen=True)
class Settings:
    model: AzureOpenAISettings | CompatibleModelSettings
    storage: StorageSettings
    system_prompt: str
    history_token_budget: int
    max_message_chars: int
    trust_client_principal: bool
    model_timeout_seconds: float
    model_max_retries: int
    client_id: str | None = None  # a user-assigned managed identity, for the model and storage
    allowed_origins: tuple[str, ...] = ()
    daily_token_quota: int = 0  # per owner and UTC day; 0 is no quota
    max_answer_tokens: int | None = None  # the model's output limit; always set with a quota
    log_content: bool = False
    telemetry: TelemetrySettings | None = None
    model_aliases: tuple[str, ...] = ()  # more names the OpenAI-compatible door accepts as `model`
    # Refuse a caller's `instructions` and system/developer messages on that door (they are taken,
    # after the server's own system prompt, by default).
    refuse_instructions: bool = False
    platform_auth: bool = False  # App Service authentication guards the app (WEBSITE_AUTH_ENABLED=True)

    @property
    def model_names(self) -> tuple[str, ...]:
        """The names a request's `model` may give: the configured model's, then the aliases."""
        return (self.model_name, *self.model_aliases)

    @property
    def model_name(self) -> str:
        if isinstance(self.model, AzureOpenAISettings):
            return self.model.deployment
        return self.model.model

    @property
    def uses_azure_openai(self) -> bool:
        return isinstance(self.model, AzureOpenAISettings)

    @property
    def uses_credential(self) -> bool:
        """Whether an Entra ID credential is needed (Azure OpenAI or keyless storage)."""
        return isinstance(self.model, AzureOpenAISettings) or self.storage.endpoint is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = _Env(os.environ if environ is None else environ)
        daily_token_quota = env.integer("CHAT_DAILY_TOKEN_QUOTA", 0, minimum=0)
        return cls(
            model=_model_settings(env),
            storage=_storage_settings(env),
            system_prompt=env.text("CHAT_SYSTEM_PROMPT") or DEFAULT_SYSTEM_PROMPT,
            history_token_budget=env.integer("CHAT_HISTORY_TOKEN_BUDGET", DEFAULT_HISTORY_TOKEN_BUDGET, minimum=0),
            max_message_chars=env.integer(
                "CHAT_MAX_MESSAGE_CHARS",
                DEFAULT_MAX_MESSAGE_CHARS,
                minimum=1,
                maximum=MAX_MESSAGE_CHARS_LIMIT,
            ),
            trust_client_principal=_trust_client_principal(env),
            platform_auth=_platform_auth(env),
            model_timeout_seconds=env.number("CHAT_MODEL_TIMEOUT_SECONDS", DEFAULT_MODEL_TIMEOUT_SECONDS, minimum=0.1),
            model_max_retries=env.integer("CHAT_MODEL_MAX_RETRIES", DEFAULT_MODEL_MAX_RETRIES, minimum=0, maximum=10),
            client_id=env.text("AZURE_CLIENT_ID") or None,
            allowed_origins=_origins(env),
            daily_token_quota=daily_token_quota,
            max_answer_tokens=_max_answer_tokens(env, daily_token_quota),
            log_content=env.boolean("CHAT_LOG_CONTENT", False),
            telemetry=_telemetry_settings(env),
            model_aliases=tuple(name.strip() for name in env.text("CHAT_MODEL_ALIASES").split(",") if name.strip()),
            refuse_instructions=env.boolean("CHAT_REFUSE_INSTRUCTIONS", False),
        )


def queue_name_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The queue background responses wait in: CHAT_QUEUE_NAME, else `<table prefix>-responses`."""
    return _queue_name(_Env(os.environ if environ is None else environ))


def _queue_name(env: _Env) -> str:
    name = env.text("CHAT_QUEUE_NAME") or f"{(env.text('CHAT_TABLE_PREFIX') or DEFAULT_TABLE_PREFIX).lower()}-responses"
    if not re.fullmatch(r"[a-z0-9](?:[a-z0-9]|-(?!-)){1,61}[a-z0-9]", name):
        raise ConfigurationError("CHAT_QUEUE_NAME must be 3 to 63 lowercase letters, digits and single hyphens.")
    return name


def auth_level_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The Functions auth level of the HTTP routes: `function` (a key is required) by default."""
    level = (_Env(os.environ if environ is None else environ).text("CHAT_AUTH_LEVEL") or "function").lower()
    if level not in AUTH_LEVELS:
        raise ConfigurationError(f"CHAT_AUTH_LEVEL must be one of {', '.join(AUTH_LEVELS)}, not {level!r}.")
    return level


def _model_settings(env: _Env) -> AzureOpenAISettings | CompatibleModelSettings:
    endpoint = env.text("AZURE_OPENAI_ENDPOINT")
    if endpoint:
        if env.text("AZURE_OPENAI_API_KEY"):
            raise ConfigurationError(
                "AZURE_OPENAI_API_KEY is set, but this app authenticates to Azure OpenAI with "
                "Microsoft Entra ID only: remove AZURE_OPENAI_API_KEY."
            )
        _require_url("AZURE_OPENAI_ENDPOINT", endpoint)
        deployment = env.text("AZURE_OPENAI_CHAT_DEPLOYMENT")
        if not deployment:
            raise ConfigurationError(
                "AZURE_OPENAI_CHAT_DEPLOYMENT is required with AZURE_OPENAI_ENDPOINT: "
                "the name of the chat model deployment."
            )
        return AzureOpenAISettings(
            endpoint=endpoint,
            deployment=deployment,
            api_version=env.text("AZURE_OPENAI_API_VERSION") or DEFAULT_API_VERSION,
        )
    base_url = env.text("OPENAI_BASE_URL")
    if base_url:
        _require_url("OPENAI_BASE_URL", base_url)
        model = env.text("OPENAI_MODEL")
        if not model:
            raise ConfigurationError("OPENAI_MODEL is required with OPENAI_BASE_URL: the model to call.")
        return CompatibleModelSettings(base_url=base_url, api_key=env.text("OPENAI_API_KEY") or None, model=model)
    raise ConfigurationError(
        "No model is configured: set AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_CHAT_DEPLOYMENT "
        "(Azure OpenAI, keyless), or OPENAI_BASE_URL and OPENAI_MODEL (an OpenAI-compatible endpoint)."
    )


def _storage_settings(env: _Env) -> StorageSettings:
    endpoint = env.text("CHAT_STORAGE_ENDPOINT")
    connection_string = env.text("CHAT_STORAGE_CONNECTION_STRING")
    if endpoint and connection_string:
        raise ConfigurationError(
            "CHAT_STORAGE_ENDPOINT and CHAT_STORAGE_CONNECTION_STRING are both set: "
            "set only one (the endpoint for keyless access in Azure, the connection string for Azurite)."
        )
    if not endpoint and not connection_string:
        raise ConfigurationError(
            "No storage is configured: set CHAT_STORAGE_ENDPOINT (keyless, "
            "e.g. https://<account>.table.core.windows.net) or CHAT_STORAGE_CONNECTION_STRING "
            "(UseDevelopmentStorage=true for Azurite)."
        )
    blob_endpoint = env.text("CHAT_BLOB_ENDPOINT")
    if endpoint:
        _require_url("CHAT_STORAGE_ENDPOINT", endpoint)
        # The account's blob service beside its table service, as Azure names them.
        blob_endpoint = blob_endpoint or re.sub(r"^(https://[^./]+)\.table\.", r"\1.blob.", endpoint)
        if blob_endpoint == endpoint:
            blob_endpoint = ""
    if blob_endpoint:
        _require_url("CHAT_BLOB_ENDPOINT", blob_endpoint)
    # Functions' identity-based connection for the queue trigger: the same setting names the queue here.
    queue_endpoint = env.text(QUEUE_SERVICE_URI)
    if endpoint and not queue_endpoint:
        queue_endpoint = re.sub(r"^(https://[^./]+)\.table\.", r"\1.queue.", endpoint)
        queue_endpoint = "" if queue_endpoint == endpoint else queue_endpoint
    if queue_endpoint:
        _require_url(QUEUE_SERVICE_URI, queue_endpoint)
    if connection_string.replace(" ", "").lower().rstrip(";") == "usedevelopmentstorage=true":
        connection_string = DEVELOPMENT_STORAGE
    prefix = env.text("CHAT_TABLE_PREFIX") or DEFAULT_TABLE_PREFIX
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]{0,40}", prefix):
        raise ConfigurationError("CHAT_TABLE_PREFIX must be 1 to 41 letters and digits, starting with a letter.")
    return StorageSettings(
        endpoint=endpoint or None,
        connection_string=connection_string or None,
        table_prefix=prefix,
        timeout_seconds=env.number("CHAT_STORAGE_TIMEOUT_SECONDS", DEFAULT_STORAGE_TIMEOUT_SECONDS, minimum=0.1),
        blob_endpoint=(blob_endpoint or None) if not connection_string else None,
        queue_endpoint=(queue_endpoint or None) if not connection_string else None,
        queue_name=_queue_name(env),
    )


def _trust_client_principal(env: _Env) -> bool:
    """Trust in x-ms-client-principal, which only App Service authentication makes safe.

    App Service sets WEBSITE_AUTH_ENABLED=True when its authentication (also the one a Static Web
    Apps linked backend turns on) guards the app; without it anyone can forge the header.
    """
    trust = env.boolean("CHAT_TRUST_CLIENT_PRINCIPAL", False)
    if trust and not _platform_auth(env):
        raise ConfigurationError(
            "CHAT_TRUST_CLIENT_PRINCIPAL=true, but WEBSITE_AUTH_ENABLED is not True: App Service "
            "authentication is off, so any caller could forge x-ms-client-principal. Turn App Service "
            "authentication on (App Service then sets WEBSITE_AUTH_ENABLED=True), or set "
            "CHAT_TRUST_CLIENT_PRINCIPAL=false."
        )
    return trust


def _platform_auth(env: _Env) -> bool:
    # The platform's variable, as App Service writes it; not one of the app's own booleans.
    return env.text("WEBSITE_AUTH_ENABLED").lower() == "true"


def _origins(env: _Env) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in env.text("CHAT_ALLOWED_ORIGINS").split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
            raise ConfigurationError(
                "CHAT_ALLOWED_ORIGINS is a comma-separated list of origins such as https://app.example.com, or *."
            )
    return origins


def _max_answer_tokens(env: _Env, daily_token_quota: int) -> int | None:
    """The answer cap: with a quota always (each turn reserves it), without one only when set."""
    if env.text("CHAT_MAX_ANSWER_TOKENS"):
        cap = env.integer("CHAT_MAX_ANSWER_TOKENS", DEFAULT_MAX_ANSWER_TOKENS, minimum=1)
    elif daily_token_quota:
        cap = DEFAULT_MAX_ANSWER_TOKENS
    else:
        return None
    if daily_token_quota and cap >= daily_token_quota:
        raise ConfigurationError(
            f"CHAT_DAILY_TOKEN_QUOTA ({daily_token_quota:,}) must be more than CHAT_MAX_ANSWER_TOKENS "
            f"({cap:,}): every turn reserves that many tokens of the quota for its answer. "
            "Raise the quota or lower CHAT_MAX_ANSWER_TOKENS."
        )
    return cap


def _telemetry_settings(env: _Env) -> TelemetrySettings | None:
    connection_string = env.text("APPLICATIONINSIGHTS_CONNECTION_STRING")
    if not connection_string:
        return None
    if "instrumentationkey=" not in connection_string.lower():
        raise ConfigurationError("APPLICATIONINSIGHTS_CONNECTION_STRING has no InstrumentationKey.")
    auth = dict(
        part.split("=", 1) for part in env.text("APPLICATIONINSIGHTS_AUTHENTICATION_STRING").split(";") if "=" in part
    )
    return TelemetrySettings(
        connection_string=connection_string,
        entra_auth=auth.get("Authorization", "").upper() == "AAD",
        client_id=auth.get("ClientId") or None,
    )


def _require_url(name: str, value: str) -> None:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ConfigurationError(f"{name} must be an http(s) URL.")


class _Env:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str) -> str:
        return self._environ.get(name, "").strip()

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.text(name).lower()
        if not raw:
            return default
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        raise ConfigurationError(f"{name} must be true or false.")

    def integer(self, name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = int(raw.replace("_", ""))
        except ValueError:
            raise ConfigurationError(f"{name} must be a whole number.") from None
        return _bounded(name, value, minimum, maximum)

    def number(self, name: str, default: float, *, minimum: float) -> float:
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigurationError(f"{name} must be a number.") from None
        return _bounded(name, value, minimum, None)


def _bounded(name: str, value, minimum, maximum):
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and at most {maximum:,}" if maximum is not None else ""
        raise ConfigurationError(f"{name} must be at least {minimum:,}{upper}.")
    return value
