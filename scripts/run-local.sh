#!/usr/bin/env bash
# Runs the app locally: Azurite on 127.0.0.1 (data kept in .azurite/), demo data when the store is empty, and the
# local Functions host with all three triggers on http://127.0.0.1:7071. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m cli run-local "$@"
