"""`python -m devhost`: run function_app.py locally the way the Functions host does."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from devhost.app_loader import AppLoadError
from devhost.host import Host
from devhost.host_config import HostConfigError
from devhost.logs import configure_logging
from devhost.settings import SettingsError

logger = logging.getLogger("devhost")

_STARTUP_ERRORS = (AppLoadError, HostConfigError, SettingsError)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    parser.add_argument("--app-dir", type=Path, default=Path.cwd(), help="folder holding function_app.py")
    parser.add_argument("--port", type=int, default=7071, help="HTTP port on 127.0.0.1 (default 7071)")
    parser.add_argument("--settings", type=Path, help="settings file (default: <app-dir>/local.settings.json)")
    return parser.parse_args(argv)


def _install_signal_handlers(stop: threading.Event) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            logger.warning("Second %s: exiting without waiting", signal.Signals(signum).name)
            os._exit(130)
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    stop = threading.Event()
    _install_signal_handlers(stop)
    host = Host(app_dir=args.app_dir.resolve(), port=args.port, settings_file=args.settings)
    try:
        host.start()
    except _STARTUP_ERRORS as error:
        logger.error("Host failed to start: %s", error)
        host.stop()
        return 1
    except OSError as error:
        logger.error("Host failed to start: cannot listen on 127.0.0.1:%d: %s", args.port, error)
        host.stop()
        return 1
    except Exception:
        logger.exception("Host failed to start: loading %s raised", args.app_dir / "function_app.py")
        host.stop()
        return 1
    while not stop.wait(timeout=0.5):
        pass
    host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
