"""`python -m portal [--port 7072] [--api http://127.0.0.1:7071/api]`: the local settle-balance portal."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from portal.api import SettleApi
from portal.app import PortalApp
from portal.principals import Directory, demo_accounts
from portal.server import PortalServer
from portal.signing import signing_key
from shared.settings import ConfigurationError, Settings

DEFAULT_PORT = 7072
DEFAULT_API = "http://127.0.0.1:7071/api"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m portal", description=__doc__)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port on 127.0.0.1 (default {DEFAULT_PORT})")
    parser.add_argument(
        "--api", default=DEFAULT_API, help=f"base URL of the function app's API (default {DEFAULT_API})"
    )
    parser.add_argument("--outbox", type=Path, help="folder of local .eml emails (default: OUTBOX_DIR)")
    return parser.parse_args(argv)


def build_server(settings: Settings, *, port: int, api_url: str, outbox_dir: Path | None = None) -> PortalServer:
    """The portal bound to 127.0.0.1:`port` (0 picks a free port), calling the API at `api_url`."""
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", api_url):
        raise ConfigurationError(f"--api must be an http(s) URL such as {DEFAULT_API}")
    api = SettleApi(
        api_url,
        signing_key=signing_key(settings.portal_webhook_secret.get_secret_value()),
        function_key=settings.local_function_key.get_secret_value(),
    )
    app = PortalApp(
        api,
        directory=Directory(demo_accounts()),
        outbox_dir=(outbox_dir or settings.outbox_dir).resolve(),
        own_origins=(settings.portal_base_url,),
    )
    server = PortalServer(("127.0.0.1", port), app)
    app.own_origins = (*app.own_origins, server.url)
    return server


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s portal %(levelname)s %(message)s")
    try:
        server = build_server(Settings.load(), port=args.port, api_url=args.api, outbox_dir=args.outbox)
    except ConfigurationError as error:
        print(error, file=sys.stderr)
        return 2
    except OSError as error:
        print(f"portal cannot listen on 127.0.0.1:{args.port}: {error}", file=sys.stderr)
        return 1
    print(f"Portal: {server.url}/ (API {args.api}; emails from {server.app.outbox_dir})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
