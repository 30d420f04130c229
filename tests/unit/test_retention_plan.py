"""What one retention plan stages on an in-memory account partition (no storage): purge scope, guards, ids."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from shared.domain.idempotency import IdempotencyRecord
from shared.domain.lifecycle import SubscriptionState, TransitionReason
from shared.domain.model import (
    Account,
    Alert,
    AlertKind,
    Charge,
    DeclineReason,
    PaymentMethod,
    PaymentMethodKind,
    Subscription,
)
from shared.domain.money import Money
from shared.domain.outbox import Notification, NotificationStatus
from shared.domain.partition import AccountPartition
from shared.domain.retention_plan import (
    RetentionActionKind,
    Template,
    effect_id,
    plan_account,
    referenced_subscriptions,
)
from shared.domain.retention_policy import RetentionPolicy
from shared.domain.settlement import Settlement
from shared.storage.layout import account_row_key

FAILED_AT = datetime(2027, 1, 4, 10, 0, tzinfo=UTC)
DISABLED_AT = FAILED_AT + timedelta(days=30)
DELETION = DISABLED_AT + timedelta(days=90)
POLICY = RetentionPolicy()
PORTAL = "https://portal.contoso.example"
K = RetentionActionKind


def card(method_id: str) -> PaymentMethod:
    return PaymentMethod(id=method_id, kind=PaymentMethodKind.CARD, brand="visa", last4="4242").mark_failed(
        DeclineReason.INSUFFICIENT_FUNDS, FAILED_AT
    )


def subscription(subscription_id: str, method_id: str, state: SubscriptionState) -> Subscription:
    enabled = Subscription(
        id=subscription_id, name=f"Name of {subscription_id}", service="VMs", payment_method_id=method_id
    )
    if state is SubscriptionState.ENABLED:
        return enabled
    past_due = enabled.transition(SubscriptionState.PAST_DUE, TransitionReason.PAYMENT_FAILED, FAILED_AT)
    if state is SubscriptionState.PAST_DUE:
        return past_due
    return past_due.transition(SubscriptionState.DISABLED, TransitionReason.GRACE_PERIOD_ENDED, DISABLED_AT)


def charge(invoice_id: str, subscription_id: str, method_id: str) -> Charge:
    return Charge(
        invoice_id=invoice_id,
        subscription_id=subscription_id,
        service="VMs",
        amount=Money(minor=4995, currency="EUR"),
        due_date=date(2027, 1, 1),
        payment_method_id=method_id,
    )


def notification(notification_id: str, context: dict[str, object], *, sent: bool = True) -> Notification:
    pending = Notification(
        id=notification_id,
        template="payment_failed",
        locale="en-US",
        to_address="ada@contoso.example",
        context=context,  # type: ignore[arg-type]
        created_at=FAILED_AT,
        next_attempt_at=FAILED_AT,
    )
    return pending.mark_sent("message", FAILED_AT) if sent else pending


def partition_with(*rows: object) -> AccountPartition:
    partition = AccountPartition(account_id="acc-1")
    partition.set_account(
        Account(
            id="acc-1",
            admin_principal_id="admin",
            notification_email="ada@contoso.example",
            locale="en-US",
            currency="EUR",
        )
    )
    partition.put(*rows)  # type: ignore[arg-type]
    partition.mark_committed({})
    return partition


def deleted_rows(partition: AccountPartition) -> set[str]:
    return {account_row_key(key) for key, value in partition.staged() if value is None}


def a_mixed_account() -> AccountPartition:
    """sub-old dies (its own card pm-old); sub-live stays; both once failed on the shared card pm-shared."""
    old = subscription("sub-old", "pm-old", SubscriptionState.DISABLED)
    live = subscription("sub-live", "pm-shared", SubscriptionState.ENABLED)
    only_old = Settlement(
        id="stl-old",
        subscription_id="sub-old",
        failed_payment_method_id="pm-old",
        payment_method_id="pm-old",
        payment_method_kind=PaymentMethodKind.CARD,
        invoice_ids=("inv-old-paid",),
        total=Money(minor=4995, currency="EUR"),
        created_at=FAILED_AT,
    )
    both = only_old.model_copy(
        update={
            "id": "stl-both",
            "failed_payment_method_id": "pm-shared",
            "payment_method_id": "pm-shared",
            "reenabled_subscription_ids": ("sub-live",),
            "invoice_ids": (),
        }
    )
    return partition_with(
        card("pm-old"),
        card("pm-shared"),
        old,
        live,
        charge("inv-old", "sub-old", "pm-old"),
        charge("inv-old-paid", "sub-old", "pm-old").mark_paid("stl-old", FAILED_AT),
        charge("inv-live", "sub-live", "pm-shared").mark_paid("stl-both", FAILED_AT),
        Alert(id="alert-old", kind=AlertKind.DISABLED, subscription_ids=("sub-old",), created_at=FAILED_AT),
        Alert(
            id="alert-both",
            kind=AlertKind.PAYMENT_FAILED,
            subscription_ids=("sub-old", "sub-live"),
            created_at=FAILED_AT,
        ),
        notification("ntf-old", {"past_due_subscriptions": [{"id": "sub-old", "name": "Name of sub-old"}]}),
        notification("ntf-both-sent", {"charges": [{"subscription_id": "sub-old"}, {"subscription_id": "sub-live"}]}),
        notification("ntf-both-pending", {"subscription_ids": ["sub-old", "sub-live"]}, sent=False),
        notification("ntf-account", {"account_id": "acc-1"}),
        only_old,
        both,
        IdempotencyRecord(settlement_id="stl-old", payload_hash="h", created_at=FAILED_AT),
        IdempotencyRecord(settlement_id="stl-both", payload_hash="h", created_at=FAILED_AT),
    )


def test_deletion_first_leaves_a_tombstone_and_then_purges_everything_only_the_deleted_subscription_used() -> None:
    partition = a_mixed_account()

    first = plan_account(partition, POLICY, DELETION, portal_url=PORTAL)
    partition.mark_committed({})
    second = plan_account(partition, POLICY, DELETION, portal_url=PORTAL)

    assert [a.kind for a in first.actions] == [K.SUPERSEDED] * 3 + [K.DELETED]
    assert first.audit_records == []
    assert [(a.subscription_id, a.kind) for a in second.actions] == [("sub-old", K.PURGED)]
    assert deleted_rows(partition) == {
        "chg:inv-old",
        "chg:inv-old-paid",
        "pm:pm-old",
        "alert:alert-old",
        "ntf:ntf-old",
        "ntf:ntf-both-sent",
        "stl:stl-old",
        "idem:stl-old",
    }
    trimmed = partition.get(Alert, "alert-both")
    assert trimmed is not None
    assert trimmed.subscription_ids == ("sub-live",)
    (record,) = second.audit_records
    assert [c.invoice_id for c in record.charges] == ["inv-old", "inv-old-paid"]
    assert [str(m) for m in record.outstanding] == ["49.95 EUR"]
    assert record.settlement_ids == ("stl-old",)
    assert record.payment_method_ids == ("pm-old",)


def test_a_purged_account_plans_nothing_more() -> None:
    partition = a_mixed_account()
    for _ in range(2):
        plan_account(partition, POLICY, DELETION, portal_url=PORTAL)
        partition.mark_committed({})

    again = plan_account(partition, POLICY, DELETION + timedelta(days=1), portal_url=PORTAL)

    assert not again.changed
    assert again.actions == []
    assert partition.staged() == []


def test_deletion_waits_ninety_days_even_when_the_policy_says_less() -> None:
    partition = partition_with(
        card("pm-1"), subscription("sub-1", "pm-1", SubscriptionState.DISABLED), charge("inv-1", "sub-1", "pm-1")
    )
    reckless = RetentionPolicy.model_construct(retention_days=10, deletion_warning_days=(), reminder_days=())

    early = plan_account(partition, reckless, DISABLED_AT + timedelta(days=89), portal_url=PORTAL)

    assert [a.kind for a in early.actions] == []
    subscription_row = partition.get(Subscription, "sub-1")
    assert subscription_row is not None
    assert subscription_row.state is SubscriptionState.DISABLED
    assert early.next_review == DISABLED_AT + timedelta(days=90)


def test_an_unsent_past_due_notice_is_withdrawn_once_the_subscription_is_enabled_again() -> None:
    partition = partition_with(
        card("pm-1"), subscription("sub-1", "pm-1", SubscriptionState.PAST_DUE), charge("inv-1", "sub-1", "pm-1")
    )
    plan_account(partition, POLICY, FAILED_AT + timedelta(days=8), portal_url=PORTAL)
    partition.mark_committed({})
    paid = partition.get(Charge, "inv-1")
    settled = partition.get(Subscription, "sub-1")
    assert paid is not None
    assert settled is not None
    partition.put(paid.mark_paid("stl-1", FAILED_AT), settled.reenable(TransitionReason.BALANCE_SETTLED, FAILED_AT))

    plan = plan_account(partition, POLICY, FAILED_AT + timedelta(days=8, hours=1), portal_url=PORTAL)

    assert [a.kind for a in plan.actions] == [K.NOTICE_WITHDRAWN]
    (reminder,) = partition.notifications
    assert reminder.template == Template.REMINDER
    assert reminder.status is NotificationStatus.FAILED


def test_the_next_review_comes_early_for_an_email_waiting_to_be_retried() -> None:
    retry_at = FAILED_AT + timedelta(days=2)
    waiting = notification("ntf-retry", {}, sent=False).model_copy(update={"next_attempt_at": retry_at})
    partition = partition_with(
        card("pm-1"),
        subscription("sub-1", "pm-1", SubscriptionState.PAST_DUE),
        charge("inv-1", "sub-1", "pm-1"),
        waiting,
    )

    plan = plan_account(partition, POLICY, FAILED_AT + timedelta(days=1), portal_url=PORTAL)

    assert plan.next_review == retry_at


def test_effect_ids_are_stable_and_stay_valid_table_keys_for_long_subscription_ids() -> None:
    long_id = "s" * 128

    key = effect_id("deletion_warning", FAILED_AT, long_id, 30)

    assert key == effect_id("deletion_warning", FAILED_AT, long_id, 30)
    assert len(key) <= 128
    assert effect_id("reminder", FAILED_AT, "sub-1", 7) == "ret.reminder.7.20270104T100000Z.sub-1"
    assert effect_id("reminder", FAILED_AT + timedelta(days=40), "sub-1", 7) != effect_id(
        "reminder", FAILED_AT, "sub-1", 7
    )


def test_a_notification_is_about_the_subscriptions_whose_ids_appear_anywhere_in_its_context() -> None:
    about = notification("n", {"a": [{"b": {"c": "sub-2"}}], "subscription_id": "sub-1", "other": "sub-9"})

    assert referenced_subscriptions(about, {"sub-1", "sub-2", "sub-3"}) == {"sub-1", "sub-2"}
