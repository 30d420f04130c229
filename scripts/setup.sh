#!/usr/bin/env bash
# Installs what the project needs, once: the Python virtual environments (the app's, checkov's) and Azurite from
# npm, all pinned.
# Re-running is cheap: each step is skipped while its lock file is unchanged.
# `--browser` also installs Debian's Chromium for the browser tests (Playwright drives it; it never downloads one).
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin="${PYTHON:-python3}"
if ! "$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "pastdue needs Python 3.11 or newer (found: $("$python_bin" --version 2>&1))" >&2
  exit 1
fi
command -v npm >/dev/null || { echo "pastdue needs Node.js and npm (for Azurite)" >&2; exit 1; }

# Both sets are locked with every file's hash (scripts/lock.sh); pip refuses anything that does not match.
if [ ! -x .venv/bin/python ]; then
  "$python_bin" -m venv .venv
fi
stamp=.venv/.requirements.sha256
wanted=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.txt
  echo "$wanted" > "$stamp"
fi

# checkov (the infra/ scan in the test command) has its own venv: its dependencies never meet the app's.
if [ ! -x .venv-checkov/bin/python ]; then
  "$python_bin" -m venv .venv-checkov
fi
checkov_stamp=.venv-checkov/.requirements.sha256
checkov_wanted=$(sha256sum requirements-checkov.txt | cut -d' ' -f1)
if [ "$(cat "$checkov_stamp" 2>/dev/null)" != "$checkov_wanted" ]; then
  .venv-checkov/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes \
    -r requirements-checkov.txt
  echo "$checkov_wanted" > "$checkov_stamp"
fi

npm_stamp=node_modules/.package-lock.sha256
npm_wanted=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -x node_modules/.bin/azurite ] || [ "$(cat "$npm_stamp" 2>/dev/null)" != "$npm_wanted" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$npm_wanted" > "$npm_stamp"
fi

if [ "${1:-}" = "--browser" ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ]; then
    echo "Installing Chromium from Debian's packages for the browser tests..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "Chromium is missing (/usr/bin/chromium); run: sudo apt-get install chromium" >&2
  fi
fi
