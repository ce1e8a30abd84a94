"""Azurite, Microsoft's Storage emulator, from node_modules: its Table, Blob and Queue services."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from azure.storage.blob.aio import ContainerClient

from tests.support import ROOT
from tests.support.ports import free_port, wait_for_port

AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published development key; it opens nothing outside a local emulator.
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class Azurite:
    """Table, Blob and Queue Storage, in memory, or in `location` on disk, where their data
    outlives a stop and a start on the same ports. With `tls` (a certificate and its key) they
    serve HTTPS and accept Entra ID bearer tokens, as Azure does for keyless access."""

    def __init__(self, location: Path | None = None, tls: tuple[Path, Path] | None = None) -> None:
        self.port = free_port()
        self.blob_port = free_port()
        self.queue_port = free_port()
        self.location = location
        self.tls = tls
        self._processes: list[subprocess.Popen] = []

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol={'https' if self.tls else 'http'};AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};TableEndpoint={self.endpoint};BlobEndpoint={self.blob_endpoint};"
            f"QueueEndpoint={self.queue_endpoint};"
        )

    @property
    def blob_endpoint(self) -> str:
        """Azurite's blob service, where turns too big for one transaction go."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.blob_port}/{AZURITE_ACCOUNT}"

    @property
    def queue_endpoint(self) -> str:
        """Azurite's queue service, where background responses wait."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.queue_port}/{AZURITE_ACCOUNT}"

    def start(self) -> Azurite:
        if not (ROOT / "node_modules" / ".bin" / "azurite-table").exists():
            raise RuntimeError("Azurite is not installed: run scripts/test, which installs it")
        self._serve("table", self.port, "Azurite")
        self._serve("blob", self.blob_port, "Azurite's blob service")
        self._serve("queue", self.queue_port, "Azurite's queue service")
        return self

    def _serve(self, service: str, port: int, what: str) -> None:
        process = subprocess.Popen(
            [
                str(ROOT / "node_modules" / ".bin" / f"azurite-{service}"),
                f"--{service}Host",
                "127.0.0.1",
                f"--{service}Port",
                str(port),
                *(["--location", str(self.location)] if self.location else ["--inMemoryPersistence"]),
                *(["--oauth", "basic", "--cert", str(self.tls[0]), "--key", str(self.tls[1])] if self.tls else []),
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--silent",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._processes.append(process)
        wait_for_port(port, process, what)

    def stop(self) -> None:
        while self._processes:
            process = self._processes.pop(0)
            if process.poll() is None:
                # SIGINT is Azurite's orderly stop: it saves a workspace on disk before it exits.
                process.send_signal(signal.SIGINT if self.location else signal.SIGTERM)
                process.wait(timeout=30)


async def blob_names(azurite, server) -> list[str]:
    """The blobs a served app's turns spilled into its container."""
    container = server.env["CHAT_TABLE_PREFIX"].lower() + "turns"
    async with ContainerClient.from_connection_string(azurite.connection_string, container) as blobs:
        if not await blobs.exists():
            return []
        return [blob.name async for blob in blobs.list_blobs()]
