"""Who administers an account, where its emails go and which dunning policy it follows, and what may change them.

The snapshot in the `payment.failed` that creates an account sets them. After that only an `account.updated` event
(or, for the address, the admin's own change through the API) sets them, each dated (`Account.admin_changed`,
`Account.notification_email_changed`, `Account.dunning_policy_changed`): an older change never replaces a newer
one, whatever order they arrive in. A snapshot on an existing account changes none (see payment_failure.py). No I/O
here.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from shared.domain.delivery_reports import resolve_if_address_changed
from shared.domain.dunning_policies import DunningPolicies
from shared.domain.model import Account, AccountField, FieldChange, Frozen, ProcessedEvent
from shared.domain.outbox import Notification
from shared.domain.partition import AccountPartition
from shared.domain.payment_events import ACCOUNT_UPDATED, AccountUpdatedEvent
from shared.domain.payment_failure import already_processed
from shared.domain.settle_balance import AccountNotFoundError


class AccountUpdatedOutcome(StrEnum):
    APPLIED = "applied"  # at least one field it names was set
    STALE = "stale"  # every field it names was set by a newer change: nothing changed
    DUPLICATE = "duplicate"


class AccountUpdatedResult(Frozen):
    event_id: str
    account_id: str
    outcome: AccountUpdatedOutcome
    applied_fields: tuple[AccountField, ...] = ()
    stale_fields: tuple[AccountField, ...] = ()


def stage_account_updated(
    partition: AccountPartition,
    event: AccountUpdatedEvent,
    *,
    payload_hash: str,
    now: datetime,
    policies: DunningPolicies,
) -> AccountUpdatedResult:
    """Stage the fields the event sets where it is the newest change to them; the marker is staged last."""
    data = event.data
    if already_processed(partition, event.id, payload_hash):
        return AccountUpdatedResult(
            event_id=event.id, account_id=data.account_id, outcome=AccountUpdatedOutcome.DUPLICATE
        )
    if data.dunning_policy is not None:
        policies.require(data.dunning_policy, field="data.dunningPolicy")
    if partition.account is None or not partition.exists:
        raise AccountNotFoundError(f"account {data.account_id} does not exist")
    change = event.change(now)
    applied: list[AccountField] = []
    stale: list[AccountField] = []
    if data.admin_principal_id is not None:
        set_here = set_admin(partition, data.admin_principal_id, change)
        (applied if set_here else stale).append(AccountField.ADMIN_PRINCIPAL_ID)
    if data.notification_email is not None:
        set_here = set_notification_email(partition, data.notification_email, change)
        (applied if set_here else stale).append(AccountField.NOTIFICATION_EMAIL)
    if data.dunning_policy is not None:
        set_here = set_dunning_policy(partition, data.dunning_policy, change)
        (applied if set_here else stale).append(AccountField.DUNNING_POLICY)
    partition.record_processed(
        ProcessedEvent(event_id=event.id, event_type=ACCOUNT_UPDATED, payload_hash=payload_hash, processed_at=now)
    )
    return AccountUpdatedResult(
        event_id=event.id,
        account_id=data.account_id,
        outcome=AccountUpdatedOutcome.APPLIED if applied else AccountUpdatedOutcome.STALE,
        applied_fields=tuple(applied),
        stale_fields=tuple(stale),
    )


def set_admin(partition: AccountPartition, principal_id: str, change: FieldChange) -> bool:
    """Make `principal_id` the admin unless a newer change set the admin; True if this change stands."""
    account = _existing(partition)
    if not change.is_newer_than(account.admin_changed):
        return False
    partition.set_account(account.model_copy(update={"admin_principal_id": principal_id, "admin_changed": change}))
    return True


def set_dunning_policy(partition: AccountPartition, policy_id: str, change: FieldChange) -> bool:
    """Make the account follow `policy_id` (already known) unless a newer change set it; True if this one stands.

    Nothing planned is rewritten: every review computes the milestones from the account's current policy."""
    account = _existing(partition)
    if not change.is_newer_than(account.dunning_policy_changed):
        return False
    partition.set_account(account.model_copy(update={"dunning_policy": policy_id, "dunning_policy_changed": change}))
    return True


def set_notification_email(partition: AccountPartition, address: str, change: FieldChange) -> bool:
    """Send the account's emails to `address` (already validated) unless a newer change set it; True if it stands.

    Even the same address again is dated anew, so that an older change that arrives later cannot replace it.
    """
    account = _existing(partition)
    if not change.is_newer_than(account.notification_email_changed):
        return False
    partition.set_account(
        account.model_copy(update={"notification_email": address, "notification_email_changed": change})
    )
    if address != account.notification_email:
        # Emails not yet sent go to the new address: the old one is likely why it changed.
        partition.put(
            *(n.model_copy(update={"to_address": address}) for n in partition.all(Notification) if n.is_pending)
        )
        resolve_if_address_changed(partition, change.at)
    return True


def _existing(partition: AccountPartition) -> Account:
    if partition.account is None:
        raise AccountNotFoundError(f"account {partition.account_id} does not exist")
    return partition.account
