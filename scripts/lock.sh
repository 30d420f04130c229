#!/usr/bin/env bash
# Recompiles the locked dependency sets from their short input files, with every file's hash:
#   requirements.in                     -> requirements.txt      (the function app; what Azure's build installs)
#   requirements.in + requirements-dev.in -> requirements-dev.txt (a superset, held to the runtime pins)
#   requirements-checkov.in             -> requirements-checkov.txt (the infra/ scanner, its own venv .venv-checkov)
# Run it after editing a .in file (add `--upgrade` to move every unpinned package to its newest release).
# uv is pinned and lives in its own venv, .venv-lock, so it never mixes with the app's packages.
set -euo pipefail
cd "$(dirname "$0")/.."

uv_version=0.13.8
python_bin="${PYTHON:-python3}"
if [ ! -x .venv-lock/bin/uv ] || [ "$(.venv-lock/bin/uv --version | cut -d' ' -f2)" != "$uv_version" ]; then
  "$python_bin" -m venv .venv-lock
  .venv-lock/bin/python -m pip install --quiet --disable-pip-version-check "uv==$uv_version"
fi

compile=(.venv-lock/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes
  --custom-compile-command scripts/lock.sh "$@")
"${compile[@]}" requirements.in -o requirements.txt
"${compile[@]}" requirements-dev.in --constraints requirements.txt -o requirements-dev.txt
"${compile[@]}" requirements-checkov.in -o requirements-checkov.txt
