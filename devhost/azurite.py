"""Start and stop the Azurite storage emulator on loopback, for the local run and for the tests."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_NAME = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft); not a secret.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEFAULT_PORTS = (10000, 10001, 10002)


class AzuriteNotInstalledError(RuntimeError):
    pass


def azurite_binary() -> Path:
    binary = REPO_ROOT / "node_modules" / ".bin" / "azurite"
    if not binary.exists():
        raise AzuriteNotInstalledError(
            f"Azurite is not installed at {binary}; run `npm ci` in {REPO_ROOT} (the README's commands do it)."
        )
    return binary


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connection_string(blob_port: int, queue_port: int, table_port: int) -> str:
    return (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{blob_port}/{ACCOUNT_NAME};"
        f"QueueEndpoint=http://127.0.0.1:{queue_port}/{ACCOUNT_NAME};"
        f"TableEndpoint=http://127.0.0.1:{table_port}/{ACCOUNT_NAME};"
    )


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class AzuriteProcess:
    blob_port: int
    queue_port: int
    table_port: int
    location: Path | None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _workspace: Path | None = field(default=None, repr=False)

    @property
    def connection_string(self) -> str:
        return connection_string(self.blob_port, self.queue_port, self.table_port)

    @property
    def ports(self) -> tuple[int, int, int]:
        return (self.blob_port, self.queue_port, self.table_port)

    def start(self, timeout: float = 60.0) -> AzuriteProcess:
        command = [
            str(azurite_binary()),
            "--disableTelemetry",
            "--silent",
            "--skipApiVersionCheck",
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(self.blob_port),
            "--queueHost",
            "127.0.0.1",
            "--queuePort",
            str(self.queue_port),
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            str(self.table_port),
        ]
        if self.location is None:
            # Azurite still writes a debug-free workspace file; keep it out of the repository.
            self._workspace = Path(tempfile.mkdtemp(prefix="azurite-"))
            command += ["--inMemoryPersistence"]
            cwd = self._workspace
        else:
            self.location.mkdir(parents=True, exist_ok=True)
            command += ["--location", str(self.location)]
            cwd = self.location
        self.process = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
            command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while not all(_port_open(port) for port in self.ports):
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"Azurite exited with code {self.process.returncode}: {error.strip()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"Azurite did not open ports {self.ports} within {timeout} s")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        if self._workspace is not None:
            shutil.rmtree(self._workspace, ignore_errors=True)
            self._workspace = None

    def __enter__(self) -> AzuriteProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def start_azurite(
    *, location: Path | None = None, ports: tuple[int, int, int] | None = None, timeout: float = 60.0
) -> AzuriteProcess:
    """Start Azurite on loopback: in memory on free ports by default, or on disk at `location`."""
    blob, queue, table = ports or (free_port(), free_port(), free_port())
    return AzuriteProcess(blob, queue, table, location).start(timeout=timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run Azurite on loopback until interrupted.")
    parser.add_argument("--location", type=Path, default=REPO_ROOT / ".azurite")
    args = parser.parse_args(argv)
    if all(_port_open(port) for port in DEFAULT_PORTS):
        print("Azurite is already listening on 127.0.0.1:10000-10002", file=sys.stderr)
        return 0
    with start_azurite(location=args.location, ports=DEFAULT_PORTS) as azurite:
        print(f"Azurite running on 127.0.0.1:{azurite.ports}, data in {args.location}", file=sys.stderr)
        with contextlib.suppress(KeyboardInterrupt):
            assert azurite.process is not None
            azurite.process.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
