"""The singleton lock of timer functions: a blob lease, as the Functions host takes one so that a timer runs on one
instance at a time however many instances share the storage account.

The lock is blob `locks/<host id>/Host.Functions.<function name>.Listener` in container `azure-webjobs-hosts` of
`AzureWebJobsStorage`, named as the Functions host names its timer locks. For each occurrence an instance takes a
15-second lease, renews it while the function runs and releases it afterwards; an instance that cannot take it
skips the occurrence. The occurrence is written into the blob's metadata before the function runs, so an instance
that takes the lease after another one has run that occurrence skips it too. A lost lease (a process frozen for
longer than the lease) can still let an occurrence run twice: timer work stays idempotent.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobLeaseClient, BlobServiceClient, LinearRetry

logger = logging.getLogger("devhost.singleton")

LOCK_CONTAINER = "azure-webjobs-hosts"
LEASE_DURATION = timedelta(seconds=15)
RENEW_EVERY = timedelta(seconds=5)
LAST_OCCURRENCE = "LastOccurrence"
_LEASE_HELD = 409


class Claim(StrEnum):
    TAKEN = "taken"
    HELD_ELSEWHERE = "the singleton lock is held by another instance"
    ALREADY_RUN = "another instance already ran it"
    UNAVAILABLE = "the singleton lock could not be reached"


def lock_blob_name(host_id: str, function_name: str) -> str:
    return f"locks/{host_id}/Host.Functions.{function_name}.Listener"


class TimerLock:
    def __init__(self, connection_string: str, host_id: str, function_name: str) -> None:
        # The timer thread is the retry: a lock that does not answer at once means this occurrence is skipped.
        retry = LinearRetry(backoff=1, retry_total=1, random_jitter_range=0)
        service = BlobServiceClient.from_connection_string(connection_string, retry_policy=retry, read_timeout=10)
        self.blob_name = lock_blob_name(host_id, function_name)
        self._container = service.get_container_client(LOCK_CONTAINER)
        self._blob = self._container.get_blob_client(self.blob_name)

    @contextlib.contextmanager
    def hold(self, occurrence: datetime) -> Iterator[Claim]:
        """Yield TAKEN while this instance holds the lease for `occurrence` (renewed meanwhile), or why not."""
        try:
            lease = self._acquire()
        except AzureError as error:
            logger.warning("singleton lock %s unavailable: %s", self.blob_name, _first_line(error))
            yield Claim.UNAVAILABLE
            return
        if lease is None:
            yield Claim.HELD_ELSEWHERE
            return
        try:
            claim = self._claim(lease, occurrence)
        except AzureError as error:
            logger.warning("singleton lock %s unavailable: %s", self.blob_name, _first_line(error))
            claim = Claim.UNAVAILABLE
        if claim is not Claim.TAKEN:
            _release(lease)
            yield claim
            return
        renewal = _Renewal(lease, self.blob_name)
        renewal.start()
        try:
            yield Claim.TAKEN
        finally:
            renewal.stop()
            _release(lease)

    def _acquire(self) -> BlobLeaseClient | None:
        lease = BlobLeaseClient(self._blob)
        try:
            taken = _try_lease(lease)
        except ResourceNotFoundError:  # the first occurrence on this storage account
            self._create_lock_blob()
            taken = _try_lease(lease)
        return lease if taken else None

    def _create_lock_blob(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            self._container.create_container()
        try:
            self._blob.upload_blob(b"", overwrite=False)
        except ResourceExistsError:
            return  # another instance created it first
        except HttpResponseError as error:
            if error.status_code != 412:  # created and leased by another instance meanwhile
                raise

    def _claim(self, lease: BlobLeaseClient, occurrence: datetime) -> Claim:
        metadata = self._blob.get_blob_properties(lease=lease).metadata or {}
        last = metadata.get(LAST_OCCURRENCE)
        if last is not None and datetime.fromisoformat(last) >= occurrence:
            return Claim.ALREADY_RUN
        metadata[LAST_OCCURRENCE] = occurrence.astimezone(UTC).isoformat()
        self._blob.set_blob_metadata(metadata, lease=lease)
        return Claim.TAKEN


class _Renewal:
    """Renews a lease until stopped, as the host does while the function runs."""

    def __init__(self, lease: BlobLeaseClient, blob_name: str) -> None:
        self._lease = lease
        self._blob_name = blob_name
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="devhost-singleton-renewal", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopping.wait(RENEW_EVERY.total_seconds()):
            try:
                self._lease.renew()
            except AzureError as error:
                logger.warning("lost the singleton lock %s: %s", self._blob_name, _first_line(error))
                return


def _try_lease(lease: BlobLeaseClient) -> bool:
    try:
        lease.acquire(lease_duration=int(LEASE_DURATION.total_seconds()))
    except HttpResponseError as error:
        if error.status_code == _LEASE_HELD:
            return False
        raise
    return True


def _release(lease: BlobLeaseClient) -> None:
    with contextlib.suppress(AzureError):  # otherwise it lapses by itself within LEASE_DURATION
        lease.release()


def _first_line(error: Exception) -> str:
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__
