"""The fixtures: real local components for the tests, from tests.support and standins.

Everything listens on loopback ports chosen free at start-up: Azurite, the wire-level stand-ins,
and the served app, in a process of its own with a clean environment.
"""

from __future__ import annotations

import uuid

import pytest
from openai import AsyncOpenAI

from standins import StandIns
from tests.support.api import Api, signed_in
from tests.support.azurite import Azurite
from tests.support.servers import AppServer, app_env, start_all


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def azurite():
    instance = Azurite().start()
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def standins():
    with StandIns() as instance:
        yield instance


@pytest.fixture(scope="session")
def server(standins, azurite):
    instance = AppServer(app_env(standins, azurite.connection_string)).start()
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def trusted_server(standins, azurite):
    """The app as deployed behind Static Web Apps: it trusts x-ms-client-principal, and App Service
    authentication is on (WEBSITE_AUTH_ENABLED=True, as the platform sets it)."""
    env = app_env(standins, azurite.connection_string, CHAT_TRUST_CLIENT_PRINCIPAL="true", WEBSITE_AUTH_ENABLED="True")
    instance = AppServer(env).start()
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def instances(standins, azurite):
    """Three instances of the app as one deployment scaled out: one environment (so one storage
    account and table prefix, one model), behind platform authentication that they trust, so each
    test can be a user of its own."""
    env = app_env(standins, azurite.connection_string, CHAT_TRUST_CLIENT_PRINCIPAL="true", WEBSITE_AUTH_ENABLED="True")
    servers = start_all([AppServer(env) for _ in range(3)])
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
async def api(server):
    async with Api(server.url) as client:
        yield client


@pytest.fixture
async def in_process(monkeypatch, standins, azurite):
    """The app's settings in this process's environment, for calling handlers in-process;
    the worker's dependencies are closed afterwards."""
    from chat.dependencies import close_dependencies

    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "OPENAI_BASE_URL", "CHAT_LOG_CONTENT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in app_env(standins, azurite.connection_string).items():
        if name not in ("PATH", "HOME", "LANG", "PYTHONPATH"):
            monkeypatch.setenv(name, value)
    await close_dependencies()
    yield monkeypatch
    await close_dependencies()


@pytest.fixture
async def client(server):
    """The openai SDK on the served app's OpenAI-compatible door."""
    async with AsyncOpenAI(base_url=f"{server.url}/api/v1", api_key="unused-here", max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def model(standins) -> str:
    """The model name the stand-in serves, as a client gives it."""
    return standins.deployment


@pytest.fixture
def user() -> dict[str, str]:
    """A user of the test's own, signed in through the platform, so their list is the test's."""
    return signed_in(uuid.uuid4().hex)


@pytest.fixture
async def sdks(instances, user):
    """The openai SDK on each of the three instances, as that user."""
    clients = [
        AsyncOpenAI(base_url=f"{server.url}/api/v1", api_key="unused-here", max_retries=0, default_headers=user)
        for server in instances
    ]
    yield clients
    for client in clients:
        await client.close()
