"""`run-local` starts the host on the test clock with a fast timer, unless the developer configured otherwise."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cli.local_stack import DEMO_HOST_SETTINGS, host_environment
from devhost.ncrontab import parse_schedule
from shared.settings import Settings


def settings_file(directory: Path, **values: str) -> Path:
    path = directory / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values}), encoding="utf-8")
    return path


def test_the_demo_host_runs_on_the_test_clock_with_a_timer_every_minute(tmp_path: Path) -> None:
    environment = host_environment({"PATH": "/usr/bin"}, tmp_path / "absent.json")

    assert environment == {"PATH": "/usr/bin", **DEMO_HOST_SETTINGS}
    demo = Settings.model_validate(DEMO_HOST_SETTINGS)
    assert demo.test_clock_enabled
    schedule = parse_schedule(demo.retention_schedule)
    first = schedule.next_after(datetime(2026, 11, 24, 10, 0, 30, tzinfo=UTC))
    assert schedule.next_after(first) - first == timedelta(minutes=1)


def test_a_setting_in_the_environment_or_in_local_settings_wins(tmp_path: Path) -> None:
    configured = settings_file(tmp_path, RETENTION_SCHEDULE="0 0 2 * * *")

    environment = host_environment({"TEST_CLOCK_ENABLED": "false"}, configured)

    assert environment == {"TEST_CLOCK_ENABLED": "false"}  # the host reads the schedule from the file itself
