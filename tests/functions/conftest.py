from __future__ import annotations

from pathlib import Path

import pytest

from devhost.azurite import AzuriteProcess
from shared import bootstrap
from shared.bootstrap import Dependencies
from shared.domain.clock import FixedClock
from tests.support.settlement_data import NOW, AccountData, settlement_deps, shared_card_account


@pytest.fixture
def deps(azurite: AzuriteProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Dependencies:
    """Settlement dependencies on the test's Azurite, handed to the HTTP functions as the process's own."""
    built = settlement_deps(azurite.connection_string, tmp_path / "outbox", FixedClock(NOW))
    monkeypatch.setattr(bootstrap, "dependencies", lambda: built)
    monkeypatch.setattr(bootstrap, "http_dependencies", lambda: built)
    return built


@pytest.fixture
def account(deps: Dependencies) -> AccountData:
    return shared_card_account().write(deps.accounts)
