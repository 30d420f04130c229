"""`run-local`: Azurite, demo data and the local Functions host, started together and stopped together."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from cli.clock import format_reading
from cli.demo import seed_demo
from devhost.azurite import DEFAULT_PORTS, AzuriteProcess, start_azurite
from devhost.settings import read_local_settings
from shared.bootstrap import dependencies

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST_PORT = 7071
PORTAL_PORT = 7072
# The demo runs on the test clock, its timer every minute: `python -m cli clock advance 31d` and the next firing
# cancels a demo subscription. The environment or local.settings.json may say otherwise.
DEMO_HOST_SETTINGS = {"TEST_CLOCK_ENABLED": "true", "RETENTION_SCHEDULE": "0 * * * * *"}


def host_environment(environ: Mapping[str, str], settings_file: Path) -> dict[str, str]:
    """The local host's environment: ours, plus each demo setting that neither it nor the settings file sets."""
    configured = read_local_settings(settings_file) if settings_file.is_file() else {}
    demo = {name: value for name, value in DEMO_HOST_SETTINGS.items() if name not in environ and name not in configured}
    return {**environ, **demo}


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _start_storage(location: Path) -> AzuriteProcess | None:
    if all(_listening(port) for port in DEFAULT_PORTS):
        print("Azurite is already running on 127.0.0.1:10000-10002; using it.")
        return None
    azurite = start_azurite(location=location, ports=DEFAULT_PORTS)
    print(f"Azurite started on 127.0.0.1:10000-10002 (data in {location}).")
    return azurite


def _seed() -> None:
    seeded = seed_demo(dependencies())
    if seeded:
        print(f"Demo data created: {', '.join(seeded)} (their payment failures are on the queue).")


def _show_test_clock(environment: Mapping[str, str]) -> None:
    try:
        enabled = TypeAdapter(bool).validate_python(environment.get("TEST_CLOCK_ENABLED", "false"))
    except ValidationError:
        return  # the host names the malformed setting as it starts
    if not enabled:
        return
    reading = dependencies().read_test_clock()
    print(
        f"The host runs on the test clock; move it with `.venv/bin/python -m cli clock advance 31d`.\n"
        f"{format_reading(reading)}"
    )


def _stop_on_sigterm() -> None:
    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _run(args: argparse.Namespace) -> int:
    os.chdir(REPO_ROOT)
    _stop_on_sigterm()
    azurite = _start_storage(args.data)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        if not args.no_demo:
            _seed()
        command = [sys.executable, "-m", "devhost", "--app-dir", str(REPO_ROOT), "--port", str(args.port)]
        environment = host_environment(os.environ, REPO_ROOT / "local.settings.json")
        _show_test_clock(environment)
        # Its own session: a Ctrl-C reaches it once, from us, so it can finish in-flight work.
        processes.append(subprocess.Popen(command, env=environment, start_new_session=True))  # noqa: S603
        portal = [
            sys.executable,
            "-m",
            "portal",
            "--port",
            str(args.portal_port),
            "--api",
            f"http://127.0.0.1:{args.port}/api",
        ]
        processes.append(subprocess.Popen(portal, start_new_session=True))  # noqa: S603 - our own interpreter
        print(
            f"\nLocal host: http://127.0.0.1:{args.port}/api (function key: LOCAL_FUNCTION_KEY, default "
            "'pastdue-local-key')\n"
            f"Portal (settle balance, emails): http://127.0.0.1:{args.portal_port}/\n"
            f"Try: curl http://127.0.0.1:{args.port}/api/health\n"
            "Emails land in .outbox/ as .eml files. Ctrl-C stops everything.\n"
        )
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        return next(process.returncode for process in processes if process.returncode is not None)
    except KeyboardInterrupt:
        return 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        if azurite is not None:
            azurite.stop()
            print("Azurite stopped.")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = subparsers.add_parser("run-local", help="run Azurite, demo data and the local host together")
    run.add_argument("--port", type=int, default=HOST_PORT, help="HTTP port of the local host (default 7071)")
    run.add_argument("--portal-port", type=int, default=PORTAL_PORT, help="port of the demo portal (default 7072)")
    run.add_argument("--data", type=Path, default=REPO_ROOT / ".azurite", help="where Azurite keeps its data")
    run.add_argument("--no-demo", action="store_true", help="do not create the demo accounts")
    run.set_defaults(handler=_run)
