"""Storage and ACS access from the settings, resolved the way the Functions host resolves `AzureWebJobsStorage`.

Two modes: a connection string (Azurite, or an account key for those who use one), or identity-based access,
where `AzureWebJobsStorage__accountName` (or one `__<service>ServiceUri` per service) names the endpoints and an
Entra ID token credential signs every request. ACS alike: `ACS_CONNECTION_STRING`, or `ACS_ENDPOINT` with the same
credential. Only the composition root builds the real credential (`azure_credential`); tests pass a static one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.adapters.lifecycle_queue import QueueLifecyclePublisher
from shared.adapters.work_queue import StorageWorkQueue
from shared.email.acs import AcsEmailSender
from shared.storage.tables import TableStorage

if TYPE_CHECKING:
    from collections.abc import Callable

    from azure.core.credentials import TokenCredential

    from shared.settings import Settings

# Public Azure; other clouds name their endpoints with the __<service>ServiceUri settings.
STORAGE_ENDPOINT_SUFFIX = "core.windows.net"


class MissingCredentialError(ValueError):
    """Identity-based access was configured, but no credential was given to the builder."""


@dataclass(frozen=True)
class StorageAccess:
    """How to reach the storage account: a connection string, or one https endpoint per service."""

    connection_string: str | None = None
    table_endpoint: str | None = None
    queue_endpoint: str | None = None
    blob_endpoint: str | None = None

    @property
    def uses_identity(self) -> bool:
        return self.connection_string is None


def storage_access(settings: Settings) -> StorageAccess:
    """The storage endpoints the settings name; a connection string wins over identity settings, as in the host."""
    if not settings.storage_uses_identity:
        return StorageAccess(connection_string=settings.storage_connection_string.get_secret_value())
    name = settings.storage_account_name
    return StorageAccess(
        table_endpoint=settings.storage_table_service_uri or (name and _service_endpoint(name, "table")),
        queue_endpoint=settings.storage_queue_service_uri or (name and _service_endpoint(name, "queue")),
        blob_endpoint=settings.storage_blob_service_uri or (name and _service_endpoint(name, "blob")),
    )


def needs_credential(settings: Settings) -> bool:
    """Whether any connection the settings describe is identity-based."""
    acs_uses_identity = settings.acs_connection_string is None and settings.acs_endpoint is not None
    return settings.storage_uses_identity or acs_uses_identity


def azure_credential(settings: Settings) -> TokenCredential:
    """The app's Entra ID credential (its managed identity in Azure). Only the composition root calls this."""
    from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - loaded only where a credential is built

    return DefaultAzureCredential(managed_identity_client_id=settings.storage_client_id)


def table_storage(
    access: StorageAccess,
    credential: TokenCredential | None,
    *,
    request_hook: Callable[[Any], None] | None = None,
    **client_options: Any,
) -> TableStorage:
    if access.connection_string is not None:
        return TableStorage(access.connection_string, request_hook=request_hook, **client_options)
    return TableStorage(
        endpoint=_required(access.table_endpoint, "table"),
        credential=_credential(credential),
        request_hook=request_hook,
        **client_options,
    )


def lifecycle_publisher(
    access: StorageAccess, queue_name: str, credential: TokenCredential | None, **client_options: Any
) -> QueueLifecyclePublisher:
    if access.connection_string is not None:
        return QueueLifecyclePublisher(access.connection_string, queue_name, **client_options)
    return QueueLifecyclePublisher.with_credential(
        _required(access.queue_endpoint, "queue"), queue_name, _credential(credential), **client_options
    )


def work_queue(
    access: StorageAccess, queue_name: str, credential: TokenCredential | None, **client_options: Any
) -> StorageWorkQueue:
    if access.connection_string is not None:
        return StorageWorkQueue.from_connection_string(access.connection_string, queue_name, **client_options)
    return StorageWorkQueue.with_credential(
        _required(access.queue_endpoint, "queue"), queue_name, _credential(credential), **client_options
    )


def acs_email_sender(settings: Settings, credential: TokenCredential | None) -> AcsEmailSender | None:
    """The ACS sender the settings describe, or None when ACS is not configured (emails go to the outbox folder)."""
    if settings.acs_connection_string is not None:
        return AcsEmailSender(settings.acs_connection_string.get_secret_value(), settings.acs_sender_address)
    if settings.acs_endpoint is not None:
        return AcsEmailSender(
            None, settings.acs_sender_address, endpoint=settings.acs_endpoint, credential=_credential(credential)
        )
    return None


def _service_endpoint(account_name: str, service: str) -> str:
    return f"https://{account_name}.{service}.{STORAGE_ENDPOINT_SUFFIX}"


def _required(endpoint: str | None, service: str) -> str:
    if endpoint is None:
        raise ValueError(f"no {service} endpoint: set AzureWebJobsStorage__{service}ServiceUri or __accountName")
    return endpoint


def _credential(credential: TokenCredential | None) -> TokenCredential:
    if credential is None:
        raise MissingCredentialError("identity-based access needs a credential: pass azure_credential(settings)")
    return credential
