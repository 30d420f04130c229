"""Every setting in one place, read once from the environment (Azure app settings, local.settings.json Values)."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Annotated, Self

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.domain.dunning_policies import DunningPolicies, DunningPoliciesError, parse_dunning_policies, single_policy
from shared.domain.retention_policy import RetentionPolicy
from shared.domain.retention_work import DEFAULT_BATCH_SIZE, DEFAULT_SHARDS, MAX_BATCH_SIZE, MAX_SHARDS

DEVELOPMENT_STORAGE = "UseDevelopmentStorage=true"
# Local-only defaults: refused when the app runs in Azure (WEBSITE_SITE_NAME set).
LOCAL_WEBHOOK_SECRET = "whsec_cGFzdGR1ZS1sb2NhbC13ZWJob29rLXNlY3JldC0wMQ=="  # noqa: S105 - refused in Azure
LOCAL_FUNCTION_KEY = "pastdue-local-key"
_NCRONTAB_FIELD = r"[0-9*/,\-A-Za-z]+"
_NCRONTAB = re.compile(rf"^{_NCRONTAB_FIELD}( {_NCRONTAB_FIELD}){{5}}$")
_WEBHOOK_SECRET = re.compile(r"whsec_[A-Za-z0-9+/]{32,}={0,2}")
_HTTPS_URL = re.compile(r"https://[^\s/?#]+(/[^\s?#]*)?")


DayList = Annotated[tuple[int, ...], NoDecode]


class ConfigurationError(Exception):
    """A setting is missing or malformed; the message names it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    storage_connection_string: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_STORAGE), validation_alias=AliasChoices("AzureWebJobsStorage")
    )
    # Identity-based storage, as the Functions host reads it (shared/connections.py): an account name, or one URI per
    # service, and the managed identity's client id when it is a user-assigned one.
    storage_account_name: str | None = Field(
        default=None, validation_alias=AliasChoices("AzureWebJobsStorage__accountName")
    )
    storage_table_service_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("AzureWebJobsStorage__tableServiceUri")
    )
    storage_queue_service_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("AzureWebJobsStorage__queueServiceUri")
    )
    storage_blob_service_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("AzureWebJobsStorage__blobServiceUri")
    )
    storage_client_id: str | None = Field(default=None, validation_alias=AliasChoices("AzureWebJobsStorage__clientId"))
    portal_webhook_secret: SecretStr = Field(
        default=SecretStr(LOCAL_WEBHOOK_SECRET), validation_alias=AliasChoices("PORTAL_WEBHOOK_SECRET")
    )
    portal_base_url: str = Field(default="http://127.0.0.1:7072", validation_alias=AliasChoices("PORTAL_BASE_URL"))
    acs_connection_string: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ACS_CONNECTION_STRING")
    )
    acs_endpoint: str | None = Field(default=None, validation_alias=AliasChoices("ACS_ENDPOINT"))
    applicationinsights_connection_string: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("APPLICATIONINSIGHTS_CONNECTION_STRING")
    )
    acs_sender_address: str = Field(
        default="DoNotReply@billing.pastdue.example", validation_alias=AliasChoices("ACS_SENDER_ADDRESS")
    )
    outbox_dir: Path = Field(default=Path(".outbox"), validation_alias=AliasChoices("OUTBOX_DIR"))
    # The timer only starts a pass (one work item per shard); queue workers do the reviews (docs/retention.md).
    retention_schedule: str = Field(default="0 */15 * * * *", validation_alias=AliasChoices("RETENTION_SCHEDULE"))
    retention_shards: int = Field(
        default=DEFAULT_SHARDS, ge=1, le=MAX_SHARDS, validation_alias=AliasChoices("RETENTION_SHARDS")
    )
    retention_batch_size: int = Field(
        default=DEFAULT_BATCH_SIZE, ge=1, le=MAX_BATCH_SIZE, validation_alias=AliasChoices("RETENTION_BATCH_SIZE")
    )
    local_function_key: SecretStr = Field(
        default=SecretStr(LOCAL_FUNCTION_KEY), validation_alias=AliasChoices("LOCAL_FUNCTION_KEY")
    )
    lifecycle_queue: str = Field(default="lifecycle-events", validation_alias=AliasChoices("LIFECYCLE_QUEUE"))
    # Retention policy (see shared/domain/retention_policy.py); days count from the failure or the cancellation.
    reminder_days: DayList = Field(default=(7, 14), validation_alias=AliasChoices("REMINDER_DAYS"))
    grace_period_days: int = Field(default=30, ge=1, le=365, validation_alias=AliasChoices("GRACE_PERIOD_DAYS"))
    warn_days_before_cancellation: int = Field(
        default=5, ge=0, le=60, validation_alias=AliasChoices("WARN_DAYS_BEFORE_CANCELLATION")
    )
    deletion_warning_days: DayList = Field(default=(30, 7, 1), validation_alias=AliasChoices("DELETION_WARNING_DAYS"))
    retention_days: int = Field(default=90, ge=90, le=3650, validation_alias=AliasChoices("RETENTION_DAYS"))
    # A JSON file of named policies over these numbers (shared/domain/dunning_policies.py); none: only `default`.
    dunning_policies_file: Path | None = Field(default=None, validation_alias=AliasChoices("DUNNING_POLICIES"))
    retention_time_budget_seconds: int = Field(
        default=240, ge=10, le=1700, validation_alias=AliasChoices("RETENTION_TIME_BUDGET_SECONDS")
    )
    # Remittance details shown to customers who pay by invoice (wire transfer).
    remittance_beneficiary: str = Field(
        default="Pastdue Demo B.V.", validation_alias=AliasChoices("REMITTANCE_BENEFICIARY")
    )
    remittance_iban: str = Field(default="NL91ABNA0417164300", validation_alias=AliasChoices("REMITTANCE_IBAN"))
    remittance_bic: str = Field(default="ABNANL2A", validation_alias=AliasChoices("REMITTANCE_BIC"))
    webhook_tolerance_seconds: int = Field(
        default=300, ge=1, le=3600, validation_alias=AliasChoices("WEBHOOK_TOLERANCE_SECONDS")
    )
    # A sandbox feature: every trigger reads "now" from the test clock kept in storage (python -m cli clock ...).
    test_clock_enabled: bool = Field(default=False, validation_alias=AliasChoices("TEST_CLOCK_ENABLED"))
    azure_site_name: str | None = Field(default=None, validation_alias=AliasChoices("WEBSITE_SITE_NAME"))

    @property
    def runs_in_azure(self) -> bool:
        return bool(self.azure_site_name)

    @property
    def storage_uses_identity(self) -> bool:
        """Identity settings are present and no connection string overrides them (the host's precedence)."""
        has_identity = bool(
            self.storage_account_name or self.storage_table_service_uri or self.storage_queue_service_uri
        )
        return has_identity and self.storage_connection_string.get_secret_value() == DEVELOPMENT_STORAGE

    @field_validator("retention_schedule")
    @classmethod
    def _six_field_ncrontab(cls, value: str) -> str:
        if not _NCRONTAB.fullmatch(value.strip()):
            raise ValueError("must be a six-field NCRONTAB expression, seconds first, such as '0 0 2 * * *'")
        return value.strip()

    @field_validator("dunning_policies_file", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("reminder_days", "deletion_warning_days", mode="before")
    @classmethod
    def _day_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(int(part) for part in value.replace(" ", "").split(",") if part)
        return value

    @field_validator("reminder_days", "deletion_warning_days")
    @classmethod
    def _positive_days(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(day < 1 or day > 365 for day in value):
            raise ValueError("days must be whole numbers from 1 to 365, comma-separated, such as '7,14'")
        return tuple(sorted(set(value)))

    @field_validator("portal_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError("must be an http(s) URL such as https://portal.example.com")
        return value.rstrip("/")

    @field_validator("portal_webhook_secret")
    @classmethod
    def _whsec(cls, value: SecretStr) -> SecretStr:
        secrets = value.get_secret_value().split()
        if not secrets or not all(_WEBHOOK_SECRET.fullmatch(secret) for secret in secrets):
            raise ValueError(
                "must be 'whsec_' followed by base64 of 24 to 64 random bytes (several separated by spaces)"
            )
        return value

    @field_validator(
        "acs_endpoint", "storage_table_service_uri", "storage_queue_service_uri", "storage_blob_service_uri"
    )
    @classmethod
    def _https_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _HTTPS_URL.fullmatch(value.strip()):
            raise ValueError("must be an https URL such as https://example.communication.azure.com")
        return value.strip()

    @field_validator("storage_account_name")
    @classmethod
    def _account_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z0-9]{3,24}", value):
            raise ValueError("must be a storage account name: 3 to 24 lower-case letters and digits")
        return value

    @model_validator(mode="after")
    def _identity_storage_names_tables_and_queues(self) -> Self:
        if self.storage_account_name or not (self.storage_table_service_uri or self.storage_queue_service_uri):
            return self
        if self.storage_table_service_uri is None:
            raise ValueError(
                "AzureWebJobsStorage__queueServiceUri is set: set AzureWebJobsStorage__tableServiceUri too"
            )
        if self.storage_queue_service_uri is None:
            raise ValueError(
                "AzureWebJobsStorage__tableServiceUri is set: set AzureWebJobsStorage__queueServiceUri too"
            )
        return self

    @model_validator(mode="after")
    def _no_local_secrets_in_azure(self) -> Self:
        if not self.runs_in_azure:
            return self
        missing = []
        if LOCAL_WEBHOOK_SECRET in self.portal_webhook_secret.get_secret_value().split():
            missing.append("PORTAL_WEBHOOK_SECRET")
        if self.acs_connection_string is None and self.acs_endpoint is None:
            missing.append("ACS_CONNECTION_STRING (or ACS_ENDPOINT)")
        if self.storage_connection_string.get_secret_value() == DEVELOPMENT_STORAGE and not self.storage_uses_identity:
            missing.append("AzureWebJobsStorage (or AzureWebJobsStorage__accountName)")
        if missing:
            raise ValueError(f"running in Azure without {', '.join(missing)}: set it in the app settings")
        return self

    @classmethod
    def load(cls) -> Settings:
        """Read and check the settings; a malformed one raises ConfigurationError naming it."""
        try:
            settings = cls()
        except ValidationError as error:
            problems = "; ".join(
                f"{_setting_name(cls, str(issue['loc'][0])) if issue['loc'] else 'settings'}: {issue['msg']}"
                for issue in error.errors()
            )
            raise ConfigurationError(f"invalid configuration: {problems}") from None
        dunning_policies(settings)
        return settings


def _setting_name(settings_class: type[Settings], field_name: str) -> str:
    field_info = settings_class.model_fields.get(field_name)
    alias = field_info.validation_alias if field_info else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return field_name


def retention_policy(settings: Settings) -> RetentionPolicy:
    return RetentionPolicy(
        reminder_days=settings.reminder_days,
        warn_days_before_cancellation=settings.warn_days_before_cancellation,
        grace_period_days=settings.grace_period_days,
        deletion_warning_days=settings.deletion_warning_days,
        retention_days=settings.retention_days,
    )


def dunning_policies(settings: Settings) -> DunningPolicies:
    """The policies of the DUNNING_POLICIES file over the settings' own numbers (read once per file and numbers);
    ConfigurationError names the file and the key at fault."""
    if settings.dunning_policies_file is None:
        return single_policy(retention_policy(settings))
    return _policies_file(settings.dunning_policies_file, retention_policy(settings))


@functools.lru_cache(maxsize=8)
def _policies_file(path: Path, default: RetentionPolicy) -> DunningPolicies:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigurationError(f"DUNNING_POLICIES {path}: cannot be read ({error.strerror or error})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"DUNNING_POLICIES {path}: not valid JSON ({error})") from None
    try:
        return parse_dunning_policies(document, default)
    except DunningPoliciesError as error:
        raise ConfigurationError(f"DUNNING_POLICIES {path}: {error}") from None
