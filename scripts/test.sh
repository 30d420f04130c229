#!/usr/bin/env bash
# The whole test suite: lint, types, the infra/ scan, then every test (Azurite is started by the tests on free ports, in memory).
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/unit -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --browser
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
scripts/checkov.sh
.venv/bin/python -m pytest -p no:cacheprovider -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
