from __future__ import annotations

import logging
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.functions.queue import QueueMessage
from pydantic import SecretStr

from devhost.azurite import AzuriteProcess
from functions.payment_failed_queue import handler
from shared.bootstrap import Dependencies, build
from shared.domain.clock import FixedClock
from shared.domain.lifecycle import SubscriptionState, TransitionReason
from shared.domain.model import (
    Account,
    Alert,
    AlertKind,
    ChangeSource,
    Charge,
    DeclineReason,
    FieldChange,
    PaymentMethod,
    PaymentMethodStatus,
    ProcessedEvent,
    Subscription,
)
from shared.domain.money import Money
from shared.domain.outbox import Notification, NotificationStatus
from shared.domain.partition import AccountPartition
from shared.domain.payment_events import PaymentFailedEvent
from shared.domain.payment_failure import (
    EventReplayConflictError,
    PaymentFailedOutcome,
    PaymentFailedResult,
    alert_id,
    notification_id,
)
from shared.domain.rejection import Rejection
from shared.settings import Settings
from shared.storage.tables import RequestCounter
from tests.support.payment_events import (
    PORTAL,
    a_charge,
    body_of,
    build_dependencies,
    eml_files,
    payment_failed_document,
    read_eml,
    text_and_html,
)

pytestmark = pytest.mark.azurite

NOW = datetime(2026, 11, 24, 10, 0, 5, tzinfo=UTC)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def outbox_dir(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def deps(azurite: AzuriteProcess, outbox_dir: Path, clock: FixedClock) -> Dependencies:
    return build_dependencies(azurite.connection_string, outbox_dir, clock)


def event_of(document: dict[str, Any]) -> PaymentFailedEvent:
    return PaymentFailedEvent.model_validate(document)


def load(deps: Dependencies, account_id: str) -> AccountPartition:
    return deps.accounts.load(account_id)


def subscription(partition: AccountPartition, subscription_id: str) -> Subscription:
    found = partition.get(Subscription, subscription_id)
    assert found is not None
    return found


def seed(deps: Dependencies, account_id: str, *rows: Any) -> None:
    partition = deps.accounts.load(account_id)
    partition.set_account(
        Account(
            id=account_id,
            admin_principal_id="user-7",
            notification_email="billing@contoso.example",
            locale="nl-NL",
            currency="EUR",
        )
    )
    partition.put(*rows)
    deps.accounts.commit(partition)


# --- every effect --------------------------------------------------------------------------------------------------


def test_a_failed_payment_records_the_account_the_failed_method_and_the_outstanding_charge(
    deps: Dependencies, account_id: str
) -> None:
    result = deps.apply_payment_failed(event_of(payment_failed_document(account_id)))

    partition = load(deps, account_id)
    assert result.outcome is PaymentFailedOutcome.APPLIED
    created = FieldChange(at=datetime(2026, 11, 24, 10, 0, tzinfo=UTC), source=ChangeSource.SNAPSHOT, cause="evt-0001")
    assert partition.account == Account(
        id=account_id,
        admin_principal_id="user-7",
        notification_email="billing@contoso.example",
        locale="nl-NL",
        currency="EUR",
        admin_changed=created,
        notification_email_changed=created,
    )
    assert partition.get(PaymentMethod, "pm-visa-4242") == PaymentMethod(
        id="pm-visa-4242",
        kind="card",
        brand="visa",
        last4="4242",
        status=PaymentMethodStatus.FAILED,
        failed_reason=DeclineReason.INSUFFICIENT_FUNDS,
        failed_at=NOW,
    )
    assert partition.charges == [
        Charge(
            invoice_id="inv-1",
            subscription_id="sub-a",
            service="Azure",
            amount=Money(minor=4995, currency="EUR"),
            due_date=date(2026, 11, 20),
            payment_method_id="pm-visa-4242",
        )
    ]


def test_on_a_shared_card_the_charged_subscription_becomes_past_due_and_the_other_is_recorded_enabled(
    deps: Dependencies, account_id: str
) -> None:
    result = deps.apply_payment_failed(event_of(payment_failed_document(account_id)))

    partition = load(deps, account_id)
    charged, sharing = subscription(partition, "sub-a"), subscription(partition, "sub-b")
    assert result.past_due_subscription_ids == ("sub-a",)
    assert (charged.state, charged.past_due_since, charged.payment_method_id) == (
        SubscriptionState.PAST_DUE,
        NOW,
        "pm-visa-4242",
    )
    assert [(t.from_state, t.to_state, t.reason, t.at) for t in charged.history] == [
        (SubscriptionState.ENABLED, SubscriptionState.PAST_DUE, TransitionReason.PAYMENT_FAILED, NOW)
    ]
    assert (sharing.name, sharing.state, sharing.payment_method_id, sharing.history) == (
        "Dev/Test",
        SubscriptionState.ENABLED,
        "pm-visa-4242",
        (),
    )


def test_one_open_payment_failed_alert_names_the_method_the_subscriptions_and_the_cancellation_date(
    deps: Dependencies, account_id: str
) -> None:
    deps.apply_payment_failed(event_of(payment_failed_document(account_id)))

    assert load(deps, account_id).alerts == [
        Alert(
            id=alert_id("pm-visa-4242"),
            kind=AlertKind.PAYMENT_FAILED,
            payment_method_id="pm-visa-4242",
            subscription_ids=("sub-a",),
            created_at=NOW,
            effective_date=date(2026, 12, 24),
        )
    ]


def test_the_notification_is_recorded_with_everything_the_email_needs_and_sent_once(
    deps: Dependencies, account_id: str, outbox_dir: Path
) -> None:
    result = deps.apply_payment_failed(event_of(payment_failed_document(account_id, event_id="evt-ctx")))

    (notification,) = load(deps, account_id).notifications
    assert notification.id == notification_id("evt-ctx") == result.notification_id
    assert result.emails_sent == (notification.id,)
    assert (notification.template, notification.locale, notification.to_address) == (
        "payment_failed",
        "nl-NL",
        "billing@contoso.example",
    )
    assert notification.status is NotificationStatus.SENT
    assert notification.message_id
    settle = f"{PORTAL}/accounts/{account_id}/settle?subscription=sub-a"
    assert notification.context == {
        "account_id": account_id,
        "payment_method": {"kind": "card", "brand": "visa", "last4": "4242", "display_name": "Visa •••• 4242"},
        "reason": "insufficient_funds",
        "hard_decline": False,
        "currency": "EUR",
        "total_outstanding": "49.95",
        "charges": [
            {
                "invoice_id": "inv-1",
                "subscription_id": "sub-a",
                "subscription_name": "Production",
                "service": "Azure",
                "amount": "49.95",
                "due_date": "2026-11-20",
            }
        ],
        "past_due_subscriptions": [
            {
                "id": "sub-a",
                "name": "Production",
                "service": "Azure",
                "state": "PastDue",
                "outstanding": "49.95",
                "cancellation_date": "2026-12-24",
                "deletion_date": "2027-03-24",
                "settle_url": settle,
            }
        ],
        "sharing_subscriptions": [{"id": "sub-b", "name": "Dev/Test", "service": "Azure"}],
        "cancellation_date": "2026-12-24",
        "deletion_date": "2027-03-24",
        "next_retry_date": None,  # the event names no gateway token: nothing is retried
        "grace_period_days": 30,
        "retention_days": 90,
        "settle_url": settle,
    }
    assert len(eml_files(outbox_dir)) == 1


def test_only_the_first_reminder_is_scheduled_on_the_due_index_a_delivered_email_defers_nothing(
    deps: Dependencies, account_id: str
) -> None:
    deps.apply_payment_failed(event_of(payment_failed_document(account_id)))

    scheduled = sorted(e.due_at for e in deps.due.due(NOW + timedelta(days=60)) if e.account_id == account_id)
    first_reminder = NOW.replace(microsecond=0) + timedelta(days=7)
    assert scheduled == [first_reminder]


def test_a_second_failure_on_the_same_method_adds_to_the_total_and_keeps_one_alert(
    deps: Dependencies, account_id: str, outbox_dir: Path, clock: FixedClock
) -> None:
    deps.apply_payment_failed(event_of(payment_failed_document(account_id, event_id="evt-1")))
    clock.advance(timedelta(days=3))
    second = payment_failed_document(account_id, event_id="evt-2", charges=[a_charge("inv-2", "sub-b", "10.05")])

    result = deps.apply_payment_failed(event_of(second))

    partition = load(deps, account_id)
    assert result.past_due_subscription_ids == ("sub-b",)
    assert {s.id: s.past_due_since for s in partition.subscriptions} == {
        "sub-a": NOW,
        "sub-b": NOW + timedelta(days=3),
    }
    (alert,) = partition.alerts
    assert (alert.subscription_ids, alert.created_at, alert.effective_date) == (
        ("sub-a", "sub-b"),
        NOW,
        date(2026, 12, 24),
    )
    latest = partition.get(Notification, notification_id("evt-2"))
    assert latest is not None
    assert latest.context["total_outstanding"] == "60.00"
    assert latest.context["sharing_subscriptions"] == []
    assert len(eml_files(outbox_dir)) == 2
    method = partition.get(PaymentMethod, "pm-visa-4242")
    assert method is not None
    assert method.failed_at == NOW


def test_known_subscriptions_keep_their_state_warned_moves_to_past_due_and_disabled_or_deleted_do_not(
    deps: Dependencies, account_id: str
) -> None:
    warned = Subscription(id="sub-w", name="W", service="Azure", payment_method_id="pm-visa-4242").transition(
        SubscriptionState.WARNED, TransitionReason.CANCELLATION_NEAR, NOW - timedelta(days=1)
    )
    disabled = Subscription(
        id="sub-d",
        name="D",
        service="Azure",
        payment_method_id="pm-visa-4242",
        state=SubscriptionState.DISABLED,
        disabled_at=NOW - timedelta(days=2),
    )
    deleted = Subscription(
        id="sub-x", name="X", service="Azure", payment_method_id="pm-visa-4242", state=SubscriptionState.DELETED
    )
    seed(deps, account_id, warned, disabled, deleted)
    document = payment_failed_document(
        account_id,
        charges=[a_charge("inv-w", "sub-w"), a_charge("inv-d", "sub-d"), a_charge("inv-x", "sub-x")],
        subscriptions=[{"id": s, "name": f"Renamed {s}", "service": "Azure"} for s in ("sub-w", "sub-d", "sub-x")],
    )

    result = deps.apply_payment_failed(event_of(document))

    partition = load(deps, account_id)
    states = {s.id: (s.name, s.state) for s in partition.subscriptions}
    assert states == {
        "sub-w": ("Renamed sub-w", SubscriptionState.PAST_DUE),
        "sub-d": ("Renamed sub-d", SubscriptionState.DISABLED),
        "sub-x": ("X", SubscriptionState.DELETED),
    }
    assert result.already_settled_invoice_ids == ("inv-x",)
    assert sorted(c.invoice_id for c in partition.charges) == ["inv-d", "inv-w"]


def test_a_redelivery_after_an_interrupted_attempt_completes_the_missing_effects_without_repeating_any(
    deps: Dependencies, account_id: str, outbox_dir: Path
) -> None:
    # GIVEN the first transactions of a split commit landed (charge and past-due state) but not the marker
    document = payment_failed_document(account_id, event_id="evt-split")
    event = event_of(document)
    charged = Subscription(id="sub-a", name="Production", service="Azure", payment_method_id="pm-visa-4242")
    seed(
        deps,
        account_id,
        charged.transition(SubscriptionState.PAST_DUE, TransitionReason.PAYMENT_FAILED, NOW),
        event.data.charges[0].to_charge("pm-visa-4242"),
    )

    # WHEN the event is delivered again
    result = deps.apply_payment_failed(event)

    # THEN the alert, the email and the marker are completed and the subscription is not transitioned twice
    partition = load(deps, account_id)
    assert result.outcome is PaymentFailedOutcome.APPLIED
    assert result.past_due_subscription_ids == ()
    assert len(subscription(partition, "sub-a").history) == 1
    assert len(partition.alerts) == 1
    assert partition.has_processed("evt-split") is not None
    assert len(eml_files(outbox_dir)) == 1


def test_an_event_with_more_rows_than_one_transaction_is_committed_completely(
    deps: Dependencies, account_id: str
) -> None:
    charges = [a_charge(f"inv-{n:03d}", f"sub-{n:03d}", "1.00") for n in range(120)]
    subscriptions = [{"id": f"sub-{n:03d}", "name": f"S{n}", "service": "Azure"} for n in range(120)]
    document = payment_failed_document(account_id, charges=charges, subscriptions=subscriptions)

    deps.apply_payment_failed(event_of(document))
    repeat = deps.apply_payment_failed(event_of(document))

    partition = load(deps, account_id)
    assert repeat.outcome is PaymentFailedOutcome.DUPLICATE
    assert len(partition.charges) == 120
    assert {s.state for s in partition.subscriptions} == {SubscriptionState.PAST_DUE}
    (notification,) = partition.notifications
    assert notification.context["total_outstanding"] == "120.00"


def test_a_failed_payment_on_one_subscription_costs_four_storage_requests_and_one_per_email_sent(
    azurite: AzuriteProcess, outbox_dir: Path, clock: FixedClock, account_id: str
) -> None:
    # Read, one due-index transaction (recovery and first reminder share the account's shard), commit, delivery; and
    # per email sent one insert into the sent-emails index that maps ACS delivery reports to their account.
    counter = RequestCounter()
    settings = Settings(
        storage_connection_string=SecretStr(azurite.connection_string), outbox_dir=outbox_dir, portal_base_url=PORTAL
    )
    deps = build(settings, clock=clock, request_hook=counter)
    document = payment_failed_document(account_id, subscriptions=[{"id": "sub-a", "name": "P", "service": "Azure"}])
    counter.reset()

    result = deps.apply_payment_failed(event_of(document))

    requests = counter.reset()
    assert len(result.emails_sent) == 1
    assert requests <= 4 + len(result.emails_sent), requests
    scheduled = [e.due_at for e in deps.due.due(NOW + timedelta(days=60)) if e.account_id == account_id]
    assert sorted(scheduled) == [NOW + timedelta(days=7)]


# --- exactly once --------------------------------------------------------------------------------------------------


def test_the_same_event_ten_times_changes_state_once_and_sends_one_email(
    deps: Dependencies, account_id: str, outbox_dir: Path
) -> None:
    event = event_of(payment_failed_document(account_id))
    first = deps.apply_payment_failed(event)
    after_first = load(deps, account_id)

    repeats = [deps.apply_payment_failed(event) for _ in range(9)]

    partition = load(deps, account_id)
    assert first.outcome is PaymentFailedOutcome.APPLIED
    assert {r.outcome for r in repeats} == {PaymentFailedOutcome.DUPLICATE}
    assert (partition.version, partition.rows) == (after_first.version, after_first.rows)
    assert len(subscription(partition, "sub-a").history) == 1
    assert len(partition.notifications) == 1
    assert len(partition.alerts) == 1
    assert len(eml_files(outbox_dir)) == 1


def test_two_workers_processing_the_same_event_at_once_change_state_once_and_send_one_email(
    azurite: AzuriteProcess, outbox_dir: Path, clock: FixedClock, account_id: str
) -> None:
    workers = [build_dependencies(azurite.connection_string, outbox_dir, clock) for _ in range(2)]
    event = event_of(payment_failed_document(account_id))
    start = threading.Barrier(2)
    results: list[PaymentFailedResult] = []
    errors: list[BaseException] = []

    def work(deps: Dependencies) -> None:
        start.wait()
        try:
            results.append(deps.apply_payment_failed(event))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(deps,)) for deps in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(r.outcome for r in results) == [PaymentFailedOutcome.APPLIED, PaymentFailedOutcome.DUPLICATE]
    partition = load(workers[0], account_id)
    assert len(subscription(partition, "sub-a").history) == 1
    (notification,) = partition.notifications
    assert notification.status is NotificationStatus.SENT
    assert len(eml_files(outbox_dir)) == 1


def test_the_same_event_id_with_different_content_is_refused_and_changes_nothing(
    deps: Dependencies, account_id: str
) -> None:
    deps.apply_payment_failed(event_of(payment_failed_document(account_id, event_id="evt-reused")))
    before = load(deps, account_id)
    other = payment_failed_document(account_id, event_id="evt-reused", charges=[a_charge("inv-9", "sub-b")])

    with pytest.raises(EventReplayConflictError):
        deps.apply_payment_failed(event_of(other))

    after = load(deps, account_id)
    assert (after.version, after.rows) == (before.version, before.rows)


def test_a_late_event_for_a_charge_already_paid_reopens_nothing_and_is_acknowledged(
    deps: Dependencies, account_id: str, outbox_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN inv-1 failed, then was paid and sub-a re-enabled
    deps.apply_payment_failed(event_of(payment_failed_document(account_id, event_id="evt-first")))
    partition = load(deps, account_id)
    paid = partition.get(Charge, "inv-1")
    assert paid is not None
    partition.put(
        paid.mark_paid("stl-1", NOW + timedelta(hours=1)),
        subscription(partition, "sub-a").reenable(TransitionReason.BALANCE_SETTLED, NOW + timedelta(hours=1)),
    )
    deps.accounts.commit(partition)
    settled = load(deps, account_id)

    # WHEN an older failure event for the same invoice arrives late, under another id
    with caplog.at_level(logging.INFO, logger="shared.services.payment_failed"):
        result = deps.apply_payment_failed(event_of(payment_failed_document(account_id, event_id="evt-late")))

    # THEN nothing re-opens, no email goes out, and the event is marked processed and logged
    after = load(deps, account_id)
    assert (result.outcome, result.already_settled_invoice_ids) == (PaymentFailedOutcome.LATE, ("inv-1",))
    assert after.get(Charge, "inv-1") == settled.get(Charge, "inv-1")
    assert subscription(after, "sub-a").state is SubscriptionState.ENABLED
    assert after.notifications == settled.notifications
    assert isinstance(after.has_processed("evt-late"), ProcessedEvent)
    assert len(eml_files(outbox_dir)) == 1
    assert "evt-late" in caplog.text
    assert "inv-1" in caplog.text


# --- bad input through the queue handler ---------------------------------------------------------------------------


def without(document: dict[str, Any], *path: str) -> dict[str, Any]:
    target = document
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return document


def with_account_field(document: dict[str, Any], address: str) -> dict[str, Any]:
    document["data"]["account"]["notificationEmail"] = address
    return document


def with_charge_field(document: dict[str, Any], field: str, value: object) -> dict[str, Any]:
    document["data"]["charges"][0][field] = value
    return document


BAD_INPUTS: dict[str, tuple[Any, str]] = {
    "malformed JSON": (lambda acc: b'{"specversion": "1.0", "id": "evt-bad", ', "body is not valid JSON"),
    "plain text": (lambda acc: b"%%% not an event %%%", "body is not valid JSON: Expecting value"),
    "base64 of something that is not JSON": (lambda acc: b"bm90IGpzb24=", "what it encodes is not valid JSON"),
    "malformed base64": (lambda acc: b"eyJzcGVjdmVyc2lvbiI6I", "body is not valid JSON"),
    "not UTF-8": (lambda acc: b"\xff\xfe\x00\x01", "not UTF-8"),
    "a JSON array": (lambda acc: b"[1, 2]", "must be a JSON object"),
    "missing field": (
        lambda acc: body_of(without(payment_failed_document(acc), "data", "account", "notificationEmail")),
        "data.account.notificationEmail: Field required",
    ),
    "invalid date": (
        lambda acc: body_of(with_charge_field(payment_failed_document(acc), "dueDate", "20 November")),
        "data.charges[0].dueDate",
    ),
    "currency other than the account's": (
        lambda acc: body_of(with_charge_field(payment_failed_document(acc), "currency", "USD")),
        "differs from the account's currency",
    ),
    "unsupported currency": (
        lambda acc: body_of(with_charge_field(payment_failed_document(acc), "currency", "XYZ")),
        "data.charges[0].currency: Value error, unsupported currency",
    ),
    "negative amount": (
        lambda acc: body_of(with_charge_field(payment_failed_document(acc), "amount", "-49.95")),
        "data.charges[0].amount: String should match pattern",
    ),
    "too many decimals for the currency": (
        lambda acc: body_of(with_charge_field(payment_failed_document(acc), "amount", "49.955")),
        "EUR amounts have at most 2 decimal places",
    ),
    "unknown decline reason": (
        lambda acc: body_of(payment_failed_document(acc, reason="aliens")),
        "data.reason: Input should be",
    ),
    "unknown type": (
        lambda acc: body_of({**payment_failed_document(acc), "type": "payment.refunded"}),
        "type: unknown event type 'payment.refunded'",
    ),
    "a charge of nothing": (
        lambda acc: body_of(with_charge_field(payment_failed_document(acc), "amount", "0.00")),
        "data.charges[0].amount: Value error, an unpaid charge must be more than zero",
    ),
    "a number of 4,301 digits": (
        lambda acc: body_of(payment_failed_document(acc))[:-1] + b', "n": ' + b"9" * 4301 + b"}",
        "body holds a number with too many digits to be an event",
    ),
    "nesting 20,000 deep": (
        lambda acc: body_of(payment_failed_document(acc))[:-1] + b', "n": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
        "body is nested too deeply to be an event",
    ),
    **{
        f"unusable notification address: {kind}": (
            lambda acc, address=address: body_of(with_account_field(payment_failed_document(acc), address)),
            "data.account.notificationEmail: Value error, not a usable email address",
        )
        for kind, address in {
            "NUL": "billing\x00@contoso.example",
            "control character": "billing\x1b@contoso.example",
            "comma": "billing,evil@contoso.example",
            "semicolon": "billing;evil@contoso.example",
            "two dots": "billing..team@contoso.example",
            "leading dot": ".billing@contoso.example",
            "numeric domain": "a@1.2",
            "encoded word": "=?utf-8?q?billing?=@contoso.example",
        }.items()
    },
}


@pytest.fixture
def queue_handler(deps: Dependencies, monkeypatch: pytest.MonkeyPatch) -> Dependencies:
    """The queue function wired to this test's dependencies (fixed clock, own outbox folder)."""
    monkeypatch.setattr(handler, "dependencies", lambda: deps)
    return deps


def deliver_message(body: bytes, message_id: str, dequeue_count: int = 1) -> None:
    handler.payment_failed(QueueMessage(id=message_id, body=body, dequeue_count=dequeue_count, pop_receipt="pr"))


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_each_kind_of_bad_input_is_recorded_as_a_rejection_at_once_and_changes_nothing(
    queue_handler: Dependencies, account_id: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    make_body, expected_reason = BAD_INPUTS[kind]
    body = make_body(account_id)
    message_id = f"msg-{account_id}"

    with caplog.at_level(logging.WARNING, logger=handler.__name__):
        deliver_message(body, message_id, dequeue_count=1)

    rejection = queue_handler.get_rejection(message_id)
    assert isinstance(rejection, Rejection)
    assert expected_reason in rejection.reason
    assert (rejection.raw_body, rejection.dequeue_count, rejection.received_at) == (body, 1, NOW)
    assert not load(queue_handler, account_id).exists
    assert expected_reason in caplog.text
    assert "billing@contoso.example" not in caplog.text


def test_a_rejection_keeps_the_event_id_when_it_is_readable(queue_handler: Dependencies, account_id: str) -> None:
    body = body_of(with_charge_field(payment_failed_document(account_id, event_id="evt-neg"), "amount", "-1"))

    deliver_message(body, f"msg-{account_id}", dequeue_count=2)

    rejection = queue_handler.get_rejection(f"msg-{account_id}")
    assert rejection is not None
    assert (rejection.event_id, rejection.event_type, rejection.dequeue_count) == ("evt-neg", "payment.failed", 2)


def test_a_reused_event_id_with_other_content_is_rejected_through_the_queue(
    queue_handler: Dependencies, account_id: str
) -> None:
    deliver_message(body_of(payment_failed_document(account_id, event_id="evt-same")), f"msg-1-{account_id}")
    before = load(queue_handler, account_id)
    changed = payment_failed_document(account_id, event_id="evt-same", charges=[a_charge("inv-7", "sub-b")])

    deliver_message(body_of(changed), f"msg-2-{account_id}")

    rejection = queue_handler.get_rejection(f"msg-2-{account_id}")
    assert rejection is not None
    assert rejection.event_id == "evt-same"
    assert "EventReplayConflictError" in rejection.reason
    assert load(queue_handler, account_id).rows == before.rows


def test_a_payment_received_for_an_unknown_account_is_rejected(queue_handler: Dependencies, account_id: str) -> None:
    pytest.importorskip("shared.services.payment_received", reason="the payment.received service is not there yet")
    body = body_of(
        {
            "specversion": "1.0",
            "id": f"evt-recv-{account_id}",
            "type": "payment.received",
            "source": "/bank-reconciliation",
            "data": {"accountId": account_id, "reference": "PD-UNKNOWN", "amount": "49.95", "currency": "EUR"},
        }
    )

    deliver_message(body, f"msg-{account_id}")

    rejection = queue_handler.get_rejection(f"msg-{account_id}")
    assert rejection is not None
    assert rejection.event_id == f"evt-recv-{account_id}"
    assert not load(queue_handler, account_id).exists


# --- the email in both locales -------------------------------------------------------------------------------------


def test_the_dutch_email_is_rendered_from_the_nl_nl_templates_into_one_eml_file(
    deps: Dependencies, account_id: str, outbox_dir: Path
) -> None:
    document = payment_failed_document(account_id, locale="nl-NL")
    document["data"]["subscriptions"][0]["name"] = "Productie <EU> & co"

    deps.apply_payment_failed(event_of(document))

    (path,) = eml_files(outbox_dir)
    message = read_eml(path)
    text, html = text_and_html(message)
    assert message["Subject"] == "Uw betaling kon niet worden verwerkt: voldoe uw openstaande saldo"
    assert message["To"] == "billing@contoso.example"
    assert "uw kaart Visa •••• 4242, omdat het saldo ontoereikend was" in text
    assert "Openstaand saldo op deze betaalmethode: €\u00a049,95" in text
    assert "- Productie <EU> & co (Azure): €\u00a049,95, wordt op 24 december 2026 beëindigd" in text
    assert "- Dev/Test (Azure)" in text
    assert "90 dagen later, op 24 maart 2027, worden de gegevens definitief verwijderd." in text
    assert f"{PORTAL}/accounts/{account_id}/settle?subscription=sub-a" in text
    assert '<html lang="nl-NL">' in html
    assert "<td>Productie &lt;EU&gt; &amp; co</td>" in html
    assert "Productie <EU>" not in html
    assert f'<a href="{PORTAL}/accounts/{account_id}/settle?subscription=sub-a"' in html
    assert '<th scope="col"' in html


def test_the_english_email_for_a_hard_decline_asks_for_another_payment_method(
    deps: Dependencies, account_id: str, outbox_dir: Path
) -> None:
    document = payment_failed_document(account_id, locale="en-US", reason="expired_card")

    deps.apply_payment_failed(event_of(document))

    (path,) = eml_files(outbox_dir)
    message = read_eml(path)
    text, html = text_and_html(message)
    assert message["Subject"] == "Your payment could not be processed: please settle your balance"
    assert "from your card Visa •••• 4242 because the card has expired." in text
    assert "This payment method can no longer be used." in text
    assert "Now outstanding on this payment method: €49.95" in text
    assert "- Production (Azure): €49.95, cancelled on December 24, 2026 unless paid" in text
    assert "90 days later, on March 24, 2027, their data is deleted for good." in text
    assert '<html lang="en-US">' in html
    assert "<strong>This payment method can no longer be used.</strong>" in html


def test_a_soft_decline_says_the_same_method_may_be_used_again(
    deps: Dependencies, account_id: str, outbox_dir: Path
) -> None:
    deps.apply_payment_failed(event_of(payment_failed_document(account_id, locale="en-US")))

    text, _ = text_and_html(read_eml(eml_files(outbox_dir)[0]))
    assert "because the card issuer reported insufficient funds." in text
    assert "You can pay again with the same payment method once the issue is resolved" in text
    assert "can no longer be used" not in text
