"""The local host's singleton lock for timers, a blob lease on Azurite: one instance per occurrence."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.blob import BlobServiceClient

from devhost.azurite import AzuriteProcess, connection_string, free_port
from devhost.singleton import LEASE_DURATION, LOCK_CONTAINER, Claim, TimerLock

pytestmark = pytest.mark.azurite

OCCURRENCE = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def two_instances(azurite: AzuriteProcess) -> tuple[TimerLock, TimerLock]:
    host_id = f"host-{uuid.uuid4().hex[:12]}"
    return (
        TimerLock(azurite.connection_string, host_id, "retention"),
        TimerLock(azurite.connection_string, host_id, "retention"),
    )


def test_the_first_occurrence_creates_the_lock_blob_where_the_functions_host_keeps_it(azurite: AzuriteProcess) -> None:
    first, _ = two_instances(azurite)

    with first.hold(OCCURRENCE) as claim:
        assert claim is Claim.TAKEN
        blob = BlobServiceClient.from_connection_string(azurite.connection_string).get_blob_client(
            LOCK_CONTAINER, first.blob_name
        )
        properties = blob.get_blob_properties()

    assert re.fullmatch(r"locks/host-[0-9a-f]{12}/Host\.Functions\.retention\.Listener", first.blob_name)
    assert properties.lease.state == "leased"
    assert blob.get_blob_properties().lease.state == "available"  # released once the function returned


def test_while_one_instance_holds_the_lock_another_skips_the_occurrence(azurite: AzuriteProcess) -> None:
    first, second = two_instances(azurite)

    with first.hold(OCCURRENCE) as taken, second.hold(OCCURRENCE) as skipped:
        assert (taken, skipped) == (Claim.TAKEN, Claim.HELD_ELSEWHERE)


def test_an_occurrence_another_instance_already_ran_is_skipped_and_the_next_one_is_taken(
    azurite: AzuriteProcess,
) -> None:
    first, second = two_instances(azurite)
    with first.hold(OCCURRENCE) as claim:
        assert claim is Claim.TAKEN

    with second.hold(OCCURRENCE) as again:
        assert again is Claim.ALREADY_RUN
    with second.hold(OCCURRENCE + timedelta(seconds=2)) as later:
        assert later is Claim.TAKEN


def test_the_lease_is_renewed_while_the_function_runs_longer_than_the_lease(azurite: AzuriteProcess) -> None:
    first, second = two_instances(azurite)
    attempts: list[Claim] = []

    with first.hold(OCCURRENCE) as claim:
        assert claim is Claim.TAKEN
        deadline = time.monotonic() + LEASE_DURATION.total_seconds() + 3
        while time.monotonic() < deadline:
            with second.hold(OCCURRENCE + timedelta(seconds=len(attempts) + 1)) as other:
                attempts.append(other)
            time.sleep(1)

    assert len(attempts) >= LEASE_DURATION.total_seconds()
    assert set(attempts) == {Claim.HELD_ELSEWHERE}


def test_storage_that_does_not_answer_skips_the_occurrence() -> None:
    unreachable = connection_string(free_port(), free_port(), free_port())

    with TimerLock(unreachable, "host-nowhere", "retention").hold(OCCURRENCE) as claim:
        assert claim is Claim.UNAVAILABLE
