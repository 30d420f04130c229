"""The DUNNING_POLICIES file: named policies over the default one, checked at start-up, naming the file and the key."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices

from shared.domain.account_update import stage_account_updated
from shared.domain.dunning_dates import account_subscription_dates, subscription_dates
from shared.domain.dunning_policies import (
    DunningPolicies,
    DunningPoliciesError,
    UnknownDunningPolicyError,
    parse_dunning_policies,
)
from shared.domain.lifecycle import SubscriptionState, TransitionReason
from shared.domain.model import (
    Account,
    AccountField,
    CollectionHold,
    DeclineReason,
    PaymentMethod,
    PaymentMethodKind,
    Subscription,
)
from shared.domain.partition import ACCOUNT_ROW, AccountPartition
from shared.domain.payment_events import AccountUpdatedEvent
from shared.domain.payment_failure import event_payload_hash
from shared.domain.payment_retry import next_retry_at
from shared.domain.retention_policy import RetentionPolicy, deletion_date, milestones
from shared.settings import ConfigurationError, Settings, dunning_policies
from tests.unit.test_payment_retry import account_with_failed_card

SETTINGS_DEFAULT = RetentionPolicy(grace_period_days=21, reminder_days=(3, 10), retention_days=100)
GOLD = {
    "gracePeriodDays": 60,
    "reminderDays": [14, 7],
    "warnDaysBeforeCancellation": 10,
    "deletionWarningDays": [30, 7, 1],
    "retentionDays": 120,
    "retryDays": [1, 3, 5],
}
FAILED_AT = datetime.fromisoformat("2027-01-04T10:00:00+00:00")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for field in Settings.model_fields.values():
        if isinstance(field.validation_alias, AliasChoices):
            for name in field.validation_alias.choices:
                monkeypatch.delenv(str(name), raising=False)


def policies_file(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "dunning-policies.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    return path


def test_a_policy_that_names_every_key_is_read_as_written_with_its_days_in_order() -> None:
    policies = parse_dunning_policies({"policies": {"gold": GOLD}}, SETTINGS_DEFAULT)

    assert policies.for_id("gold") == RetentionPolicy(
        grace_period_days=60,
        reminder_days=(7, 14),
        warn_days_before_cancellation=10,
        deletion_warning_days=(1, 7, 30),
        retention_days=120,
        retry_days=(1, 3, 5),
    )
    assert policies.ids == ("default", "gold")


def test_omitted_keys_inherit_from_the_default_of_the_settings() -> None:
    policies = parse_dunning_policies({"policies": {"gold": {"gracePeriodDays": 60}}}, SETTINGS_DEFAULT)

    assert policies.default == SETTINGS_DEFAULT
    assert policies.for_id("gold") == SETTINGS_DEFAULT.model_copy(update={"grace_period_days": 60})


def test_the_files_own_default_entry_changes_the_default_and_what_the_others_inherit() -> None:
    document = {"policies": {"default": {"retentionDays": 180}, "gold": {"gracePeriodDays": 60}}}

    policies = parse_dunning_policies(document, SETTINGS_DEFAULT)

    assert policies.default.retention_days == 180
    assert policies.default.grace_period_days == SETTINGS_DEFAULT.grace_period_days
    assert policies.for_id("gold").retention_days == 180
    assert policies.for_id("gold").grace_period_days == 60


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"policies": {"gold": {"retentionDays": 89}}}, "policies.gold.retentionDays: must be at least 90"),
        ({"policies": {"gold": {"graceDays": 60}}}, "policies.gold.graceDays: unknown key"),
        ({"policies": {"gold": {"grace_period_days": 60}}}, "policies.gold.grace_period_days: unknown key"),
        ({"policies": {"gold": {"reminderDays": [0, 7]}}}, "policies.gold.reminderDays: days must be"),
        ({"policies": {"gold": {"gracePeriodDays": "sixty"}}}, "policies.gold.gracePeriodDays:"),
        ({"policies": {"gold/x": {}}}, "policies.gold/x: a policy id"),
        ({"policy": {}}, "policies: Field required"),
    ],
)
def test_a_malformed_document_is_refused_naming_the_key(document: object, reason: str) -> None:
    with pytest.raises(DunningPoliciesError) as raised:
        parse_dunning_policies(document, SETTINGS_DEFAULT)

    assert str(raised.value).startswith(reason)


def test_retention_days_below_90_fail_the_start_naming_the_file_and_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = policies_file(tmp_path, {"policies": {"gold": {"retentionDays": 89}}})
    monkeypatch.setenv("DUNNING_POLICIES", str(path))

    with pytest.raises(ConfigurationError) as raised:
        Settings.load()

    assert str(raised.value) == f"DUNNING_POLICIES {path}: policies.gold.retentionDays: must be at least 90"


def test_an_unknown_key_fails_the_start_naming_the_file_and_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = policies_file(tmp_path, {"policies": {"gold": {**GOLD, "holdDays": 3}}})
    monkeypatch.setenv("DUNNING_POLICIES", str(path))

    with pytest.raises(
        ConfigurationError, match=rf"^{re.escape(f'DUNNING_POLICIES {path}: policies.gold.holdDays: unknown key')}$"
    ):
        Settings.load()


@pytest.mark.parametrize("text", ['{"policies": {"gold": {"gracePeriodDays": 60,}}}', "", "\ufffe{"])
def test_a_file_that_is_not_json_fails_the_start_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    path = policies_file(tmp_path, text)
    monkeypatch.setenv("DUNNING_POLICIES", str(path))

    with pytest.raises(ConfigurationError, match=rf"^{re.escape(f'DUNNING_POLICIES {path}: not valid JSON')}"):
        Settings.load()


def test_a_missing_file_fails_the_start_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUNNING_POLICIES", str(tmp_path / "nowhere.json"))

    with pytest.raises(ConfigurationError, match=re.escape("nowhere.json: cannot be read")):
        Settings.load()


def test_a_good_file_loads_over_the_retention_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUNNING_POLICIES", str(policies_file(tmp_path, {"policies": {"gold": {"retentionDays": 365}}})))
    monkeypatch.setenv("GRACE_PERIOD_DAYS", "45")

    policies = dunning_policies(Settings.load())

    assert policies.default.grace_period_days == 45
    assert policies.for_id("gold").grace_period_days == 45
    assert policies.for_id("gold").retention_days == 365


def test_without_a_file_every_account_follows_the_settings_and_a_blank_setting_means_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DUNNING_POLICIES", " ")
    monkeypatch.setenv("GRACE_PERIOD_DAYS", "45")

    policies = dunning_policies(Settings.load())

    assert policies.ids == ("default",)
    assert policies.default.grace_period_days == 45


def test_an_account_follows_its_policy_and_one_no_longer_configured_falls_back_to_default() -> None:
    policies = parse_dunning_policies({"policies": {"gold": GOLD}}, SETTINGS_DEFAULT)
    account = Account(
        id="acc-1", admin_principal_id="admin-1", notification_email="a@example.com", locale="en-US", currency="EUR"
    )

    assert policies.for_account(account) == SETTINGS_DEFAULT
    assert policies.for_account(account.model_copy(update={"dunning_policy": "gold"})).grace_period_days == 60
    assert policies.for_account(account.model_copy(update={"dunning_policy": "retired"})) == SETTINGS_DEFAULT


def test_an_unknown_policy_id_is_a_domain_error_naming_the_field_and_the_id() -> None:
    policies = DunningPolicies()

    with pytest.raises(UnknownDunningPolicyError) as raised:
        policies.require("platinum", field="data.account.dunningPolicy")

    assert str(raised.value) == "data.account.dunningPolicy: unknown dunning policy 'platinum'; configured: default"
    assert policies.require("default", field="data.dunningPolicy") == "default"


# --- the dates ---------------------------------------------------------------------------------------------------


def past_due(since: datetime = FAILED_AT) -> Subscription:
    return Subscription(id="sub-1", name="Prod", service="VMs", payment_method_id="pm-1").transition(
        SubscriptionState.PAST_DUE, TransitionReason.PAYMENT_FAILED, since
    )


def card(reason: DeclineReason = DeclineReason.INSUFFICIENT_FUNDS, token: str | None = "tok_1") -> PaymentMethod:
    return PaymentMethod(id="pm-1", kind=PaymentMethodKind.CARD, gateway_token=token).mark_failed(reason, FAILED_AT)


def test_the_dates_of_a_past_due_subscription_follow_its_policy() -> None:
    gold = parse_dunning_policies({"policies": {"gold": GOLD}}, RetentionPolicy()).for_id("gold")

    dates = subscription_dates(past_due(), gold)

    assert dates.cancellation == FAILED_AT + timedelta(days=60)
    assert dates.warning == FAILED_AT + timedelta(days=50)
    assert dates.deletion == FAILED_AT + timedelta(days=180)
    assert dates.next_retry is None


def test_once_warned_the_warning_is_no_longer_ahead_and_once_disabled_only_the_deletion_is() -> None:
    policy = RetentionPolicy()
    warned = past_due().transition(SubscriptionState.WARNED, TransitionReason.CANCELLATION_NEAR, FAILED_AT)
    disabled_at = FAILED_AT + timedelta(days=31)
    disabled = warned.transition(SubscriptionState.DISABLED, TransitionReason.GRACE_PERIOD_ENDED, disabled_at)

    assert subscription_dates(warned, policy).warning is None
    assert subscription_dates(warned, policy).cancellation == FAILED_AT + timedelta(days=30)
    assert subscription_dates(disabled, policy).model_dump() == {
        "next_retry": None,
        "warning": None,
        "cancellation": None,
        "deletion": deletion_date(disabled, policy),
    }
    assert subscription_dates(disabled, policy).deletion == disabled_at + timedelta(days=90)
    delete_milestone = [m.at for m in milestones(disabled, policy) if m.kind == "delete"]
    assert delete_milestone == [subscription_dates(disabled, policy).deletion]


def test_an_enabled_subscription_has_no_dates_even_with_a_retry_offered() -> None:
    enabled = Subscription(id="sub-1", name="Prod", service="VMs", payment_method_id="pm-1")

    dates = subscription_dates(enabled, RetentionPolicy(), next_retry=FAILED_AT)

    assert dates.model_dump() == {"next_retry": None, "warning": None, "cancellation": None, "deletion": None}


def test_the_dates_shown_take_the_next_retry_from_the_retry_schedule_and_none_while_held() -> None:
    policy = RetentionPolicy(retry_days=(1, 3, 5))
    partition = account_with_failed_card()
    subscription = partition.subscriptions[0]

    shown = account_subscription_dates(partition, subscription, policy, FAILED_AT)
    assert (
        shown.next_retry
        == next_retry_at(partition, subscription.id, policy, FAILED_AT)
        == FAILED_AT + timedelta(days=1)
    )
    assert shown.cancellation == subscription_dates(subscription, policy).cancellation

    assert (
        account_subscription_dates(
            account_with_failed_card(DeclineReason.EXPIRED_CARD), subscription, policy, FAILED_AT
        ).next_retry
        is None
    )
    assert (
        account_subscription_dates(account_with_failed_card(token=None), subscription, policy, FAILED_AT).next_retry
        is None
    )

    account = partition.account
    assert account is not None
    hold = CollectionHold(reason="dispute", set_by="cli-ops", since=FAILED_AT)
    partition.set_account(account.model_copy(update={"hold": hold}))
    assert account_subscription_dates(partition, subscription, policy, FAILED_AT).next_retry is None


# --- the account's policy, as account.updated changes it ---------------------------------------------------------


def updated(event_id: str, at: datetime, policy: str) -> AccountUpdatedEvent:
    return AccountUpdatedEvent.model_validate(
        {
            "specversion": "1.0",
            "id": event_id,
            "type": "account.updated",
            "source": "/billing-engine",
            "time": at.isoformat(),
            "data": {"accountId": "acc-1", "dunningPolicy": policy},
        }
    )


def stored_account() -> AccountPartition:
    partition = AccountPartition(account_id="acc-1")
    partition.account = Account(
        id="acc-1", admin_principal_id="admin-1", notification_email="a@example.com", locale="en-US", currency="EUR"
    )
    partition.etags[ACCOUNT_ROW] = "v1"  # read from storage: nothing staged yet
    return partition


def test_an_older_policy_change_arriving_later_does_not_replace_a_newer_one() -> None:
    policies = parse_dunning_policies({"policies": {"gold": GOLD, "silver": {}}}, RetentionPolicy())
    partition = stored_account()
    newer, older = updated("evt-2", FAILED_AT + timedelta(hours=2), "gold"), updated("evt-1", FAILED_AT, "silver")
    now = FAILED_AT + timedelta(hours=3)

    first = stage_account_updated(partition, newer, payload_hash=event_payload_hash(newer), now=now, policies=policies)
    second = stage_account_updated(partition, older, payload_hash=event_payload_hash(older), now=now, policies=policies)

    assert first.applied_fields == (AccountField.DUNNING_POLICY,)
    assert second.stale_fields == (AccountField.DUNNING_POLICY,)
    assert partition.account is not None
    assert partition.account.dunning_policy == "gold"


def test_an_account_updated_naming_an_unknown_policy_stages_nothing() -> None:
    partition = stored_account()
    event = updated("evt-1", FAILED_AT, "platinum")

    with pytest.raises(UnknownDunningPolicyError, match=r"^data\.dunningPolicy: unknown dunning policy 'platinum'"):
        stage_account_updated(
            partition, event, payload_hash=event_payload_hash(event), now=FAILED_AT, policies=DunningPolicies()
        )

    assert not partition.has_changes
