from __future__ import annotations

import pytest
from pydantic import AliasChoices

from shared.settings import LOCAL_WEBHOOK_SECRET, ConfigurationError, Settings, retention_policy

SETTING_NAMES = [
    str(choice)
    for field in Settings.model_fields.values()
    if isinstance(field.validation_alias, AliasChoices)
    for choice in field.validation_alias.choices
]
AZURE_WEBHOOK_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3"
NEXT_WEBHOOK_SECRET = "whsec_" + "bmV4dC13ZWJob29rLXNlY3JldC1mb3ItdGhlLXBvcnRhbA=="


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)


def test_with_no_configuration_at_all_every_setting_has_a_safe_local_default() -> None:
    settings = Settings.load()

    assert settings.storage_connection_string.get_secret_value() == "UseDevelopmentStorage=true"
    assert settings.acs_connection_string is None
    assert settings.retention_schedule == "0 */15 * * * *"
    assert retention_policy(settings).retention_days == 90


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RETENTION_SCHEDULE", "0 2 * * *"),
        ("PORTAL_BASE_URL", "not a url"),
        ("PORTAL_WEBHOOK_SECRET", "secret"),
        ("REMINDER_DAYS", "7,x"),
        ("RETENTION_DAYS", "30"),
    ],
)
def test_a_malformed_setting_fails_at_start_up_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ConfigurationError, match=name):
        Settings.load()


def test_in_azure_missing_secrets_fail_at_start_up_naming_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_SITE_NAME", "pastdue-prod")

    with pytest.raises(ConfigurationError) as raised:
        Settings.load()

    assert "PORTAL_WEBHOOK_SECRET" in str(raised.value)
    assert "ACS_CONNECTION_STRING" in str(raised.value)
    assert LOCAL_WEBHOOK_SECRET not in str(raised.value)


def test_in_azure_with_its_secrets_set_the_settings_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_SITE_NAME", "pastdue-prod")
    monkeypatch.setenv("PORTAL_WEBHOOK_SECRET", AZURE_WEBHOOK_SECRET)
    monkeypatch.setenv("ACS_CONNECTION_STRING", "endpoint=https://x.communication.azure.com/;accesskey=a2V5")
    monkeypatch.setenv("AzureWebJobsStorage", "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=a2V5")

    assert Settings.load().runs_in_azure


def test_in_azure_identity_settings_stand_for_the_storage_and_acs_connection_strings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEBSITE_SITE_NAME", "pastdue-prod")
    monkeypatch.setenv("PORTAL_WEBHOOK_SECRET", AZURE_WEBHOOK_SECRET)
    monkeypatch.setenv("ACS_ENDPOINT", "https://acs-pastdue.europe.communication.azure.com")
    monkeypatch.setenv("AzureWebJobsStorage__accountName", "stpastdue")

    settings = Settings.load()

    assert settings.storage_uses_identity
    assert settings.acs_connection_string is None


def test_in_azure_without_storage_or_acs_the_error_names_both_ways_to_configure_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEBSITE_SITE_NAME", "pastdue-prod")
    monkeypatch.setenv("PORTAL_WEBHOOK_SECRET", AZURE_WEBHOOK_SECRET)

    with pytest.raises(ConfigurationError) as raised:
        Settings.load()

    assert "AzureWebJobsStorage__accountName" in str(raised.value)
    assert "ACS_ENDPOINT" in str(raised.value)
    assert "PORTAL_WEBHOOK_SECRET" not in str(raised.value)


def test_a_queue_service_uri_without_a_table_service_uri_fails_naming_the_missing_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AzureWebJobsStorage__queueServiceUri", "https://stpastdue.queue.core.windows.net")

    with pytest.raises(ConfigurationError, match="AzureWebJobsStorage__tableServiceUri"):
        Settings.load()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ACS_ENDPOINT", "http://acs.example.test"),
        ("AzureWebJobsStorage__tableServiceUri", "stpastdue.table.core.windows.net"),
        ("AzureWebJobsStorage__accountName", "St-Pastdue"),
    ],
)
def test_a_malformed_identity_setting_fails_naming_it(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ConfigurationError, match=name):
        Settings.load()


def test_during_a_rotation_the_webhook_secret_may_list_several_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTAL_WEBHOOK_SECRET", f"{NEXT_WEBHOOK_SECRET} {AZURE_WEBHOOK_SECRET}")

    assert Settings.load().portal_webhook_secret.get_secret_value().split() == [
        NEXT_WEBHOOK_SECRET,
        AZURE_WEBHOOK_SECRET,
    ]


def test_in_azure_the_local_webhook_secret_is_refused_even_among_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_SITE_NAME", "pastdue-prod")
    monkeypatch.setenv("PORTAL_WEBHOOK_SECRET", f"{AZURE_WEBHOOK_SECRET} {LOCAL_WEBHOOK_SECRET}")
    monkeypatch.setenv("ACS_ENDPOINT", "https://acs-pastdue.europe.communication.azure.com")
    monkeypatch.setenv("AzureWebJobsStorage__accountName", "stpastdue")

    with pytest.raises(ConfigurationError, match="PORTAL_WEBHOOK_SECRET"):
        Settings.load()
