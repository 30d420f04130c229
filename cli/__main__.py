"""Operator commands. Each module in COMMAND_MODULES adds its sub-commands through `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMAND_MODULES = (
    "cli.demo",
    "cli.local_stack",
    "cli.retention",
    "cli.backlog",
    "cli.rejections",
    "cli.clock",
    "cli.holds",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cli", description="pastdue operator commands")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
