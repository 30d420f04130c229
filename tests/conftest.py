from __future__ import annotations

from collections.abc import Iterator

import pytest

from devhost.azurite import AzuriteProcess, start_azurite


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteProcess]:
    """One in-memory Azurite per test session (per xdist worker), on free loopback ports."""
    process = start_azurite()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def storage_connection_string(azurite: AzuriteProcess) -> str:
    return azurite.connection_string
