"""App settings: `local.settings.json` Values into the environment, and `%NAME%` references."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path

STORAGE_SETTING = "AzureWebJobsStorage"
DEFAULT_SETTINGS: Mapping[str, str] = {
    STORAGE_SETTING: "UseDevelopmentStorage=true",
    "LOCAL_FUNCTION_KEY": "pastdue-local-key",
    # The local host's master key, for admin-level routes (support tools); a function key does not open them.
    "LOCAL_ADMIN_KEY": "pastdue-local-admin-key",
}
# The Functions host's own setting; it names the host's locks in storage, so instances of one app must share it.
HOST_ID_SETTING = "AzureFunctionsWebHost__hostId"
_REFERENCE = re.compile(r"%([^%]+)%")
_HOST_ID_CHARACTERS = re.compile(r"[^a-z0-9-]+")
MAX_HOST_ID_LENGTH = 32


class SettingsError(ValueError):
    pass


def read_local_settings(path: Path) -> dict[str, str]:
    """The `Values` of a local.settings.json file, as strings."""
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as error:
        raise SettingsError(f"{path} is not valid JSON: {error}") from error
    values = document.get("Values", {}) if isinstance(document, dict) else None
    if not isinstance(values, dict):
        raise SettingsError(f"{path}: 'Values' must be an object of setting names to strings")
    return {
        str(name): value if isinstance(value, str) else json.dumps(value)
        for name, value in values.items()
        if value is not None
    }


def apply_settings(
    app_dir: Path, settings_file: Path | None, environ: MutableMapping[str, str] | None = None
) -> Path | None:
    """Load settings into the environment without overriding it; returns the file read, if any."""
    target = os.environ if environ is None else environ
    path = settings_file if settings_file is not None else app_dir / "local.settings.json"
    loaded: Path | None = None
    if path.is_file():
        for name, value in read_local_settings(path).items():
            target.setdefault(name, value)
        loaded = path
    elif settings_file is not None:
        raise SettingsError(f"settings file {settings_file} does not exist")
    for name, value in DEFAULT_SETTINGS.items():
        target.setdefault(name, value)
    target.setdefault(HOST_ID_SETTING, default_host_id(app_dir))
    return loaded


def default_host_id(app_dir: Path) -> str:
    """The app folder's name as a host id (lower case, letters, digits and dashes, at most 32 characters): every
    local host started on one folder shares the timer locks, as the instances of one function app do."""
    name = _HOST_ID_CHARACTERS.sub("-", app_dir.resolve().name.lower())[:MAX_HOST_ID_LENGTH].strip("-")
    return name or "devhost"


def resolve_references(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace each `%NAME%` with the app setting NAME, as binding expressions do."""
    source = os.environ if environ is None else environ

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in source:
            raise SettingsError(f"app setting '{name}' referenced by '{value}' is not set")
        return source[name]

    return _REFERENCE.sub(lookup, value)
