from __future__ import annotations

import pytest

from shared.settings import LOCAL_WEBHOOK_SECRET, ConfigurationError, Settings, retention_policy

SETTING_NAMES = [
    "AzureWebJobsStorage",
    "PORTAL_WEBHOOK_SECRET",
    "PORTAL_BASE_URL",
    "ACS_CONNECTION_STRING",
    "ACS_SENDER_ADDRESS",
    "OUTBOX_DIR",
    "RETENTION_SCHEDULE",
    "LOCAL_FUNCTION_KEY",
    "WEBSITE_SITE_NAME",
    "REMINDER_DAYS",
    "RETENTION_DAYS",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)


def test_with_no_configuration_at_all_every_setting_has_a_safe_local_default() -> None:
    settings = Settings.load()

    assert settings.storage_connection_string.get_secret_value() == "UseDevelopmentStorage=true"
    assert settings.acs_connection_string is None
    assert settings.retention_schedule == "0 0 2 * * *"
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
    monkeypatch.setenv("PORTAL_WEBHOOK_SECRET", "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3")
    monkeypatch.setenv("ACS_CONNECTION_STRING", "endpoint=https://x.communication.azure.com/;accesskey=a2V5")
    monkeypatch.setenv("AzureWebJobsStorage", "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=a2V5")

    assert Settings.load().runs_in_azure
