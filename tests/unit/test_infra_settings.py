"""The Bicep templates set every setting the code reads, or the README lists it as one the template leaves unset."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices, Field

from shared.events.decoding import PAYMENT_EVENTS_QUEUE
from shared.settings import Settings
from shared.storage.layout import ALL_TABLES

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "infra" / "main.bicep"
FUNCTION_APP = ROOT / "infra" / "modules" / "function-app.bicep"
STORAGE = ROOT / "infra" / "modules" / "storage.bicep"
README = ROOT / "README.md"
UNSET_SECTION = "### Settings the template leaves unset"
# Read by the Functions host (and the exporter), not by Settings.
HOST_SETTINGS = frozenset(
    {
        "AzureWebJobsStorage__accountName",
        "AzureWebJobsStorage__credential",
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    }
)
POLICY_SETTINGS = frozenset(
    {
        "RETENTION_SCHEDULE",
        "REMINDER_DAYS",
        "WARN_DAYS_BEFORE_CANCELLATION",
        "GRACE_PERIOD_DAYS",
        "DELETION_WARNING_DAYS",
        "RETENTION_DAYS",
        "RETENTION_TIME_BUDGET_SECONDS",
        "WEBHOOK_TOLERANCE_SECONDS",
    }
)
_KEY = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.+?)\s*$", re.MULTILINE)


def braced_block(text: str, opening: str) -> str:
    """The text between the `{` that ends `opening` and its matching `}`."""
    start = text.index(opening) + len(opening)
    depth = 1
    for position in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[position], 0)
        if depth == 0:
            return text[start:position]
    raise AssertionError(f"no closing brace after {opening!r}")


def template_app_settings() -> dict[str, str]:
    """Every app setting the templates set, with the Bicep expression of its value."""
    blocks = [
        braced_block(MAIN.read_text(), "appSettings: {"),
        braced_block(FUNCTION_APP.read_text(), "properties: union(appSettings, {"),
    ]
    return {name: value for block in blocks for name, value in _KEY.findall(block)}


def documented_unset_settings() -> set[str]:
    """The first-column names of the README table of settings the template leaves unset."""
    text = README.read_text()
    section = text[text.index(UNSET_SECTION) :]
    section = section[: section.find("\n#", len(UNSET_SECTION))]
    return {
        name
        for row in section.splitlines()
        if row.startswith("| `")
        for name in re.findall(r"`([^`]+)`", row.split("|")[1])
    }


def settings_read_by(settings_class: type[Settings]) -> set[str]:
    return {
        str(choice)
        for field in settings_class.model_fields.values()
        if isinstance(field.validation_alias, AliasChoices)
        for choice in field.validation_alias.choices
    }


def missing_from_template(settings_class: type[Settings]) -> set[str]:
    return settings_read_by(settings_class) - set(template_app_settings()) - documented_unset_settings()


def test_every_setting_the_code_reads_is_set_by_the_template_or_documented_as_unset() -> None:
    assert missing_from_template(Settings) == set()


def test_a_setting_added_to_settings_and_not_to_the_template_is_reported() -> None:
    class WithANewSetting(Settings):
        dunning_level: int = Field(default=1, validation_alias=AliasChoices("DUNNING_LEVEL"))

    assert missing_from_template(WithANewSetting) == {"DUNNING_LEVEL"}


def test_the_host_settings_are_set_and_no_connection_string_or_key_is() -> None:
    app_settings = template_app_settings()

    assert set(app_settings) >= HOST_SETTINGS
    assert app_settings["AzureWebJobsStorage__credential"] == "'managedidentity'"
    assert {"AzureWebJobsStorage", "ACS_CONNECTION_STRING"}.isdisjoint(app_settings)
    assert "listKeys" not in "".join(path.read_text() for path in (ROOT / "infra").rglob("*.bicep"))


def test_the_webhook_secret_is_a_key_vault_reference() -> None:
    assert template_app_settings()["PORTAL_WEBHOOK_SECRET"].startswith("'@Microsoft.KeyVault(SecretUri=")


def test_the_policy_settings_come_from_template_parameters() -> None:
    parameters = set(re.findall(r"^param (\w+) ", MAIN.read_text(), re.MULTILINE))
    app_settings = template_app_settings()

    for name in POLICY_SETTINGS:
        used = set(re.findall(r"\b(\w+)\b", app_settings[name]))
        assert used & parameters, f"{name} is not set from a parameter: {app_settings[name]}"


def test_a_setting_is_not_both_set_by_the_template_and_documented_as_unset() -> None:
    assert set(template_app_settings()) & documented_unset_settings() == set()


def test_the_storage_template_creates_the_tables_of_the_storage_layout() -> None:
    table_list = re.search(r"var tableNames = \[(.*?)\]", STORAGE.read_text())
    assert table_list is not None
    assert set(re.findall(r"'([a-z]+)'", table_list.group(1))) == set(ALL_TABLES)


def test_the_storage_template_creates_the_queues_the_triggers_read_and_write_with_their_poison_queues() -> None:
    text = STORAGE.read_text()
    queue_list = re.search(r"var queueNames = \[(.*?)\]", text, re.DOTALL)
    assert queue_list is not None
    lifecycle = re.search(r"var lifecycleQueueName = '([a-z-]+)'", text)
    assert lifecycle is not None
    queues = set(re.findall(r"'([a-z-]+)'", queue_list.group(1))) | {lifecycle.group(1)}

    assert {PAYMENT_EVENTS_QUEUE, f"{PAYMENT_EVENTS_QUEUE}-poison"} <= queues
    assert Settings.model_fields["lifecycle_queue"].default in queues
    assert {"retention-work", "retention-work-poison"} <= queues
