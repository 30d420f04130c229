"""The parts of host.json the local host honours: the HTTP route prefix and the queue trigger options."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from devhost.timespan import parse_duration

MAX_BATCH_SIZE = 32
MIN_POLLING_INTERVAL = timedelta(milliseconds=100)


class HostConfigError(ValueError):
    pass


@dataclass(frozen=True)
class QueueOptions:
    batch_size: int = 16
    new_batch_threshold: int = 8
    # Azure's default is one minute; the Core Tools default for local runs is 2 s.
    max_polling_interval: timedelta = timedelta(seconds=2)
    visibility_timeout: timedelta = timedelta(0)
    max_dequeue_count: int = 5
    message_encoding: str = "base64"


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    queues: QueueOptions = field(default_factory=QueueOptions)


def load_host_config(app_dir: Path) -> HostConfig:
    path = app_dir / "host.json"
    if not path.is_file():
        return HostConfig()
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as error:
        raise HostConfigError(f"{path} is not valid JSON: {error}") from error
    extensions = _section(document, "extensions", path)
    http = _section(extensions, "http", path)
    prefix = http.get("routePrefix", "api")
    if not isinstance(prefix, str):
        raise HostConfigError(f"{path}: extensions.http.routePrefix must be a string")
    try:
        queues = _queue_options(_section(extensions, "queues", path))
    except ValueError as error:
        raise HostConfigError(f"{path}: extensions.queues.{error}") from error
    return HostConfig(route_prefix=prefix.strip("/"), queues=queues)


def _section(document: object, name: str, path: Path) -> dict[str, Any]:
    section = document.get(name, {}) if isinstance(document, dict) else {}
    if not isinstance(section, dict):
        raise HostConfigError(f"{path}: '{name}' must be an object")
    return section


def _queue_options(section: dict[str, Any]) -> QueueOptions:
    batch_size = _integer(section, "batchSize", 16, 1, MAX_BATCH_SIZE)
    threshold = _integer(section, "newBatchThreshold", batch_size // 2, 0, 1_000)
    polling = parse_duration(section.get("maxPollingInterval", "00:00:02"), "maxPollingInterval")
    if polling < MIN_POLLING_INTERVAL:
        raise ValueError("maxPollingInterval must be at least 100 ms")
    visibility = parse_duration(section.get("visibilityTimeout", "00:00:00"), "visibilityTimeout")
    encoding = str(section.get("messageEncoding", "base64")).lower()
    if encoding not in {"base64", "none"}:
        raise ValueError(f"messageEncoding must be 'base64' or 'none', got '{encoding}'")
    return QueueOptions(
        batch_size=batch_size,
        new_batch_threshold=threshold,
        max_polling_interval=polling,
        visibility_timeout=visibility,
        max_dequeue_count=_integer(section, "maxDequeueCount", 5, 1, 1_000),
        message_encoding=encoding,
    )


def _integer(section: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = section.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return value
