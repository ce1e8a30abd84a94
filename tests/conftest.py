"""Real local components for the tests: Azurite, the wire-level stand-ins, and the served app.

Everything listens on loopback ports chosen free at start-up. The app runs under uvicorn in a
process of its own with a clean environment, so nothing of the developer's machine (an Azure
login, a real endpoint) leaks in, and its credential can only reach the identity stand-in.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.api import SERVER_KEEP_ALIVE_SECONDS, Api
from tests.standins import StandIns

ROOT = Path(__file__).resolve().parent.parent
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published development key; it opens nothing outside a local emulator.
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
START_TIMEOUT_SECONDS = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} in time")


class Azurite:
    """Microsoft's Table Storage emulator, from node_modules: in memory, or in `location` on disk,
    where its data outlives a stop and a start on the same port. With `tls` (a certificate and its
    key) it serves HTTPS and accepts Entra ID bearer tokens, as Azure does for keyless access."""

    def __init__(self, location: Path | None = None, tls: tuple[Path, Path] | None = None) -> None:
        self.port = free_port()
        self.blob_port = free_port()
        self.location = location
        self.tls = tls
        self._process: subprocess.Popen | None = None
        self._blob_process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol={'https' if self.tls else 'http'};AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};TableEndpoint={self.endpoint};BlobEndpoint={self.blob_endpoint};"
        )

    @property
    def blob_endpoint(self) -> str:
        """Azurite's blob service, where turns too big for one transaction go."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.blob_port}/{AZURITE_ACCOUNT}"

    def start(self) -> Azurite:
        binary = ROOT / "node_modules" / ".bin" / "azurite-table"
        if not binary.exists():
            raise RuntimeError("Azurite is not installed: run scripts/test, which installs it")
        self._process = subprocess.Popen(
            [
                str(binary),
                "--tableHost",
                "127.0.0.1",
                "--tablePort",
                str(self.port),
                *(["--location", str(self.location)] if self.location else ["--inMemoryPersistence"]),
                *(["--oauth", "basic", "--cert", str(self.tls[0]), "--key", str(self.tls[1])] if self.tls else []),
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--silent",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self._process, "Azurite")
        self._blob_process = subprocess.Popen(
            [
                str(ROOT / "node_modules" / ".bin" / "azurite-blob"),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.blob_port),
                *(["--location", str(self.location)] if self.location else ["--inMemoryPersistence"]),
                *(["--oauth", "basic", "--cert", str(self.tls[0]), "--key", str(self.tls[1])] if self.tls else []),
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--silent",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.blob_port, self._blob_process, "Azurite's blob service")
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            # SIGINT is Azurite's orderly stop: it saves a workspace on disk before it exits.
            self._process.send_signal(signal.SIGINT if self.location else signal.SIGTERM)
            self._process.wait(timeout=30)
        self._process = None
        if self._blob_process is not None and self._blob_process.poll() is None:
            self._blob_process.send_signal(signal.SIGINT if self.location else signal.SIGTERM)
            self._blob_process.wait(timeout=30)
        self._blob_process = None


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files, for loopback HTTPS in the tests."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class AppServer:
    """The app under uvicorn (chat.local), as scripts/run serves it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = env
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen | None = None

    def start(self) -> AppServer:
        return self.launch().wait()

    def launch(self) -> AppServer:
        """Start the process and return at once; wait() for it to listen."""
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "chat.local:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--timeout-keep-alive",
                str(SERVER_KEEP_ALIVE_SECONDS),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=self.env,
        )
        return self

    def wait(self) -> AppServer:
        assert self._process is not None, "launch() first"
        wait_for_port(self.port, self._process, "the app")
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=30)
        self._process = None


def app_env(standins: StandIns, connection_string: str | None, **overrides: str) -> dict[str, str]:
    """A clean environment: only what the app needs, the credential pointed at the stand-in."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(ROOT),
        "AZURE_OPENAI_ENDPOINT": standins.model_url,
        "AZURE_OPENAI_CHAT_DEPLOYMENT": standins.deployment,
        "IDENTITY_ENDPOINT": standins.identity_endpoint,
        "IDENTITY_HEADER": standins.identity_header,
        "CHAT_STORAGE_CONNECTION_STRING": connection_string,
        "CHAT_TABLE_PREFIX": "t" + uuid.uuid4().hex[:12],
        "CHAT_SYSTEM_PROMPT": "You are the test assistant.",
        "CHAT_MODEL_TIMEOUT_SECONDS": "3",
        "CHAT_MODEL_MAX_RETRIES": "1",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


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


def start_all(servers: list[AppServer]) -> list[AppServer]:
    """Launch every server before waiting for any, so their start-ups overlap; stop them all if
    one does not come up."""
    try:
        for server in servers:
            server.launch()
        for server in servers:
            server.wait()
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


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
