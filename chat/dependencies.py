"""The app's clients, made once per worker on first use and closed once at shut-down."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from azure.core.credentials_async import AsyncTokenCredential
from azure.data.tables.aio import TableClient
from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential
from openai import AsyncAzureOpenAI, AsyncOpenAI

from chat import logs, telemetry
from chat.bootstrap import Engine, Policy, compose
from chat.engine.errors import ConfigurationError
from chat.engine.runs import Runs
from chat.settings import AzureOpenAISettings, Settings, StorageSettings
from chat.storage.blobs import TurnBlobs
from chat.storage.conversations import ConversationIndex
from chat.storage.jobs import JobStore
from chat.storage.messages import TurnStore
from chat.storage.queue import JobQueue, encoding
from chat.storage.quota import TokenLedger
from chat.storage.runs import RunStore
from chat.storage.tables import Table
from chat.storage.transport import StorageSessions, StorageTransport
from chat.upstream.model import ModelClient, has_developer_role
from chat.upstream.tokens import BearerTokens
from chat.web.callers import IgnoredPrincipals

if TYPE_CHECKING:  # the Blob and Queue Storage SDKs are imported when a worker first uses them
    from azure.storage.blob.aio import ContainerClient
    from azure.storage.queue.aio import QueueClient

COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"
# Fail fast when storage is down (a clear 503) instead of the SDK's default ten retries. The
# connection and read timeouts are the transport's (chat/storage/transport.py).
STORAGE_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "retry_backoff_factor": 0.2,
}
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def _proxied(environ: Mapping[str, str]) -> bool:
    """Whether a proxy is configured in the environment. The HTTP session reads proxy settings
    from it on every request, in a thread, when told to: only tell it to when one is."""
    return any(environ.get(name) or environ.get(name.lower()) for name in PROXY_VARIABLES)


def storage_options(environ: Mapping[str, str]) -> dict[str, Any]:
    """The storage clients' options, beside their transport."""
    return {**STORAGE_CLIENT_OPTIONS, "use_env_settings": _proxied(environ)}


@dataclass
class Dependencies:
    settings: Settings
    engine: Engine
    turn_store: TurnStore
    messages_table: Table
    conversations_table: Table
    model: ModelClient
    credential: AsyncTokenCredential | None
    storage_sessions: StorageSessions
    queue: JobQueue | None = None
    ignored_principals: IgnoredPrincipals = field(default_factory=IgnoredPrincipals)

    @classmethod
    def build(cls, settings: Settings, *, credential: AsyncTokenCredential | None = None) -> Dependencies:
        """Make every client; `credential` replaces the default one (tests inject theirs)."""
        logs.quiet_sdk_loggers()
        telemetry.configure(settings.telemetry)
        if credential is None and settings.uses_credential:
            credential = _credential(settings)
        sessions = StorageSessions(trust_env=_proxied(os.environ))
        messages, conversations = _tables(settings.storage, credential, sessions)
        blobs = _blobs(settings.storage, credential, sessions)
        turn_store = TurnStore(messages, blobs=blobs)
        model = model_client(settings, credential)
        queue = _queue(settings.storage, credential, sessions)
        engine = compose(
            turn_store,
            ConversationIndex(conversations, turn_store.read_head),
            TokenLedger(conversations),
            model,
            Policy.from_settings(settings),
            tracer=telemetry.Tracer(),
            runs=Runs(RunStore(messages)),
            jobs=(JobStore(messages, blobs), queue) if queue is not None else None,
        )
        return cls(
            settings=settings,
            engine=engine,
            turn_store=turn_store,
            messages_table=messages,
            conversations_table=conversations,
            model=model,
            credential=credential,
            storage_sessions=sessions,
            queue=queue,
        )

    async def aclose(self) -> None:
        await self.engine.aclose()
        await self.turn_store.close()
        await self.conversations_table.close()
        if self.queue is not None:
            await self.queue.close()
        await self.storage_sessions.close()
        await self.model.close()
        if self.credential is not None:
            await self.credential.close()


_current: Dependencies | None = None
_lock = asyncio.Lock()


async def get_dependencies() -> Dependencies:
    """The worker's dependencies, built on first use from the environment: what the hosts
    (function_app.py, chat.local) hand to every request; handlers are given them, never call this."""
    global _current
    if _current is None:
        async with _lock:
            if _current is None:
                _current = Dependencies.build(Settings.from_env())
    return _current


async def close_dependencies() -> None:
    global _current
    if _current is not None:
        current, _current = _current, None
        await current.aclose()


def _credential(settings: Settings) -> AsyncTokenCredential:
    """The worker's one credential, handed to both tables, the blob container and the model's
    token source. (The telemetry exporter's pipeline is synchronous: it makes its own, of the same
    identity, in chat/telemetry.py.)"""
    if settings.client_id:
        return ManagedIdentityCredential(client_id=settings.client_id)
    return DefaultAzureCredential()


def _tables(
    storage: StorageSettings, credential: AsyncTokenCredential | None, sessions: StorageSessions
) -> tuple[Table, Table]:
    """The two tables, each client with a transport of its own over the worker's sessions."""
    connection_string = storage.connection_string
    if connection_string:

        def client(name: str, transport: StorageTransport) -> TableClient:
            try:
                options = storage_options(os.environ)
                return TableClient.from_connection_string(
                    connection_string, table_name=name, transport=transport, **options
                )
            except ValueError:
                # The SDK's own words, without the string: it may hold an account key.
                raise ConfigurationError(
                    "CHAT_STORAGE_CONNECTION_STRING is malformed: it is `UseDevelopmentStorage=true` or "
                    "`Name=value;` pairs with at least an account (or endpoint) and a key or SAS."
                ) from None

    else:
        endpoint = storage.endpoint
        if endpoint is None or credential is None:
            raise ValueError("keyless storage needs CHAT_STORAGE_ENDPOINT and a credential")

        def client(name: str, transport: StorageTransport) -> TableClient:
            return TableClient(
                endpoint=endpoint,
                table_name=name,
                credential=credential,
                transport=transport,
                **storage_options(os.environ),
            )

    def table(name: str) -> Table:
        transport = StorageTransport(sessions, deadline_seconds=storage.timeout_seconds)
        made = Table(client(name, transport))
        transport.when_table_missing(made.forget)
        return made

    return table(f"{storage.table_prefix}messages"), table(f"{storage.table_prefix}conversations")


def _blobs(
    storage: StorageSettings, credential: AsyncTokenCredential | None, sessions: StorageSessions
) -> TurnBlobs | None:
    """The container of turns too big for one transaction, over the worker's sessions; None when
    the storage settings name no blob service (such turns are then refused)."""
    if not storage.has_blobs:
        return None

    def connect() -> ContainerClient:
        from azure.storage.blob.aio import ContainerClient

        return _service_client(ContainerClient, storage, storage.blob_endpoint, storage.container, credential, sessions)

    return TurnBlobs(storage.container, connect)


def _queue(
    storage: StorageSettings, credential: AsyncTokenCredential | None, sessions: StorageSessions
) -> JobQueue | None:
    """The queue of background responses, over the worker's sessions; None when the storage
    settings name no queue service (background responses are then refused)."""
    if not storage.has_queue:
        return None

    def connect() -> QueueClient:
        from azure.storage.queue.aio import QueueClient

        return _service_client(
            QueueClient, storage, storage.queue_endpoint, storage.queue_name, credential, sessions, encoding()
        )

    return JobQueue(storage.queue_name, connect)


Client = TypeVar("Client", "ContainerClient", "QueueClient")


def _service_client(
    kind: type[Client],
    storage: StorageSettings,
    endpoint: str | None,
    name: str,
    credential: AsyncTokenCredential | None,
    sessions: StorageSessions,
    extra: Mapping[str, Any] | None = None,
) -> Client:
    """A blob container's or a queue's client over the worker's sessions: from the connection
    string, or keyless on the service's endpoint with the worker's credential."""
    transport = StorageTransport(sessions, deadline_seconds=storage.timeout_seconds)
    options = {**storage_options(os.environ), **(extra or {})}
    if storage.connection_string:
        return kind.from_connection_string(storage.connection_string, name, transport=transport, **options)
    assert endpoint is not None and credential is not None
    return kind(endpoint, name, credential=credential, transport=transport, **options)


def model_client(settings: Settings, credential: AsyncTokenCredential | None) -> ModelClient:
    tokens = None
    if isinstance(settings.model, AzureOpenAISettings):
        if credential is None:
            raise ValueError("Azure OpenAI needs a credential: the app never sends it a key")
        tokens = BearerTokens(credential, COGNITIVE_SERVICES_SCOPE)
    developer_role = isinstance(settings.model, AzureOpenAISettings) and has_developer_role(settings.model.api_version)
    return ModelClient(
        _openai_client(settings, tokens), settings.model_name, tokens=tokens, developer_role=developer_role
    )


def _openai_client(settings: Settings, tokens: BearerTokens | None) -> AsyncOpenAI:
    options: dict[str, Any] = {"timeout": settings.model_timeout_seconds, "max_retries": settings.model_max_retries}
    model = settings.model
    if isinstance(model, AzureOpenAISettings):
        if tokens is None:
            raise ValueError("Azure OpenAI needs a token source: the app never sends it a key")
        return AsyncAzureOpenAI(
            azure_endpoint=model.endpoint, api_version=model.api_version, azure_ad_token_provider=tokens, **options
        )
    # Local servers such as Ollama need no key, but the SDK insists on one.
    return AsyncOpenAI(base_url=model.base_url, api_key=model.api_key or "no-key", **options)
