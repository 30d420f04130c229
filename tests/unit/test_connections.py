"""How storage and ACS access are resolved from the settings, as the Functions host resolves AzureWebJobsStorage."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from shared import connections
from shared.settings import DEVELOPMENT_STORAGE, Settings

KEYED = "DefaultEndpointsProtocol=https;AccountName=stpastdue;AccountKey=a2V5;EndpointSuffix=core.windows.net"


def settings(**values: str) -> Settings:
    return Settings.model_validate(values)


def test_with_no_configuration_storage_is_azurite_by_connection_string_and_no_credential_is_needed() -> None:
    local = settings()

    assert connections.storage_access(local) == connections.StorageAccess(connection_string=DEVELOPMENT_STORAGE)
    assert not connections.needs_credential(local)


def test_an_account_name_gives_the_https_endpoint_of_each_service() -> None:
    access = connections.storage_access(settings(AzureWebJobsStorage__accountName="stpastdue"))

    assert access.uses_identity
    assert access.table_endpoint == "https://stpastdue.table.core.windows.net"
    assert access.queue_endpoint == "https://stpastdue.queue.core.windows.net"
    assert access.blob_endpoint == "https://stpastdue.blob.core.windows.net"


def test_service_uris_are_used_as_given_and_override_the_account_name() -> None:
    access = connections.storage_access(
        settings(
            AzureWebJobsStorage__accountName="stpastdue",
            AzureWebJobsStorage__tableServiceUri="https://tables.example.test",
        )
    )

    assert access.table_endpoint == "https://tables.example.test"
    assert access.queue_endpoint == "https://stpastdue.queue.core.windows.net"


def test_a_connection_string_wins_over_identity_settings_as_in_the_host() -> None:
    both = settings(AzureWebJobsStorage=KEYED, AzureWebJobsStorage__accountName="stpastdue")

    assert connections.storage_access(both) == connections.StorageAccess(connection_string=KEYED)
    assert not connections.needs_credential(both)


def test_an_acs_endpoint_without_a_connection_string_needs_the_credential() -> None:
    assert connections.needs_credential(settings(ACS_ENDPOINT="https://acs-x.communication.azure.com"))
    assert not connections.needs_credential(
        Settings(
            acs_endpoint="https://acs-x.communication.azure.com",
            acs_connection_string=SecretStr("endpoint=https://acs-x.communication.azure.com/;accesskey=a2V5"),
        )
    )


def test_identity_access_without_a_credential_is_refused_before_any_client_is_built() -> None:
    identity = settings(AzureWebJobsStorage__accountName="stpastdue", ACS_ENDPOINT="https://acs.example.test")
    access = connections.storage_access(identity)

    with pytest.raises(connections.MissingCredentialError):
        connections.table_storage(access, None)
    with pytest.raises(connections.MissingCredentialError):
        connections.lifecycle_publisher(access, "lifecycle-events", None)
    with pytest.raises(connections.MissingCredentialError):
        connections.acs_email_sender(identity, None)


def test_no_acs_settings_means_no_acs_sender() -> None:
    assert connections.acs_email_sender(settings(), None) is None


def test_the_credential_is_the_default_azure_credential_with_the_user_assigned_client_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[dict[str, Any]] = []

    class RecordingCredential:
        def __init__(self, **options: Any) -> None:
            built.append(options)

    # Replaced so that building it cannot reach for a token; only its construction is under test.
    monkeypatch.setattr("azure.identity.DefaultAzureCredential", RecordingCredential)

    credential = connections.azure_credential(settings(AzureWebJobsStorage__clientId="0b5e-client"))

    assert isinstance(credential, RecordingCredential)
    assert built == [{"managed_identity_client_id": "0b5e-client"}]
