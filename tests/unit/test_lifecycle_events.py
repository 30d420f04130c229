"""Lifecycle events out: every factory conforms to schemas/lifecycle-events.schema.json; ids stay as published."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, get_args

import pytest
from pydantic import BaseModel, ValidationError

from shared.adapters.lifecycle_queue import pack_batches
from shared.domain.lifecycle import SubscriptionState, TransitionReason
from shared.domain.lifecycle_events import (
    MAX_SUBSCRIPTIONS_PER_EVENT,
    EmailDelivery,
    EnablingReason,
    LifecycleEventType,
    NotificationAddressUndeliverableData,
    PaymentMethodReplacedData,
    RetentionStep,
    SubscriptionDeletedData,
    SubscriptionDisabledData,
    SubscriptionEnabledData,
    UndeliverableReason,
    event_id,
    notification_address_undeliverable,
    payment_method_replaced,
    subscription_deleted,
    subscription_disabled,
    subscription_enabled,
)
from shared.domain.model import PaymentMethodKind, Subscription
from shared.domain.money import Money
from shared.domain.outbox import LifecycleEvent
from shared.domain.retention_policy import RetentionPolicy
from shared.domain.settlement import Settlement, SettlementStatus
from tests.support.lifecycle_events import SCHEMA, VALIDATOR, as_sent, schema_errors

ACCOUNT = "acc-1"
FAILED_AT = datetime(2027, 1, 4, 10, 0, tzinfo=UTC)
DISABLED_AT = datetime(2027, 2, 4, 2, 0, tzinfo=UTC)
PAID_AT = datetime(2027, 1, 20, 9, 30, tzinfo=UTC)
SETTLEMENT_ID = "stl-0123456789abcdef0123456789abcdef"
POLICY = RetentionPolicy()
DATA_MODELS: dict[str, type[BaseModel]] = {
    "subscriptionEnabledData": SubscriptionEnabledData,
    "subscriptionDisabledData": SubscriptionDisabledData,
    "subscriptionDeletedData": SubscriptionDeletedData,
    "paymentMethodReplacedData": PaymentMethodReplacedData,
    "notificationAddressUndeliverableData": NotificationAddressUndeliverableData,
}
MESSAGE_ID = "2f0c7e52-5d0b-4c3e-9a51-6c6f1f1e9b11"
BOUNCED_AT = datetime(2027, 1, 4, 10, 0, 42, tzinfo=UTC)


def past_due(subscription_id: str = "sub-1") -> Subscription:
    return Subscription(
        id=subscription_id, name="Ada's production", service="Virtual Machines", payment_method_id="pm-visa"
    ).transition(SubscriptionState.PAST_DUE, TransitionReason.PAYMENT_FAILED, FAILED_AT)


def disabled(subscription_id: str = "sub-1") -> Subscription:
    return past_due(subscription_id).transition(
        SubscriptionState.DISABLED, TransitionReason.GRACE_PERIOD_ENDED, DISABLED_AT
    )


def succeeded_settlement(switched: tuple[str, ...] = ("sub-1", "sub-2")) -> Settlement:
    return Settlement(
        id=SETTLEMENT_ID,
        subscription_id="sub-1",
        failed_payment_method_id="pm-visa",
        payment_method_id="pm-new",
        payment_method_kind=PaymentMethodKind.CARD,
        invoice_ids=("inv-1",),
        total=Money.parse("49.95", "EUR"),
        status=SettlementStatus.SUCCEEDED,
        created_at=PAID_AT,
        completed_at=PAID_AT,
        reenabled_subscription_ids=("sub-1",),
        switched_subscription_ids=switched,
    )


def every_factory() -> dict[str, LifecycleEvent]:
    settlement = succeeded_settlement()
    return {
        "enabled by a settlement": subscription_enabled(
            ACCOUNT,
            past_due().reenable(TransitionReason.BALANCE_SETTLED, PAID_AT),
            cause=settlement,
            reason=TransitionReason.BALANCE_SETTLED,
            at=PAID_AT,
        ),
        "enabled by a wire transfer": subscription_enabled(
            ACCOUNT,
            past_due().reenable(TransitionReason.PAYMENT_RECEIVED, PAID_AT),
            cause=settlement,
            reason=TransitionReason.PAYMENT_RECEIVED,
            at=PAID_AT,
        ),
        "enabled by healing": subscription_enabled(
            ACCOUNT,
            disabled().reenable(TransitionReason.SELF_HEALED, DISABLED_AT + timedelta(hours=1)),
            cause=RetentionStep(reference=FAILED_AT),
            reason=TransitionReason.SELF_HEALED,
            at=DISABLED_AT + timedelta(hours=1),
        ),
        "disabled": subscription_disabled(
            ACCOUNT, disabled(), POLICY, cause=RetentionStep(reference=FAILED_AT), at=DISABLED_AT
        ),
        "deleted": subscription_deleted(
            ACCOUNT,
            disabled().transition(SubscriptionState.DELETED, TransitionReason.RETENTION_ENDED, DISABLED_AT),
            cause=RetentionStep(reference=DISABLED_AT),
            at=DISABLED_AT + timedelta(days=90),
        ),
        "payment method replaced": only(payment_method_replaced(ACCOUNT, settlement, at=PAID_AT)),
        "address undeliverable": notification_address_undeliverable(
            ACCOUNT,
            "billing@contoso.example",
            reason="bounced",
            detail="550 5.1.1 mailbox unavailable",
            cause=EmailDelivery(message_id=MESSAGE_ID),
            reported_at=BOUNCED_AT,
            at=BOUNCED_AT + timedelta(seconds=3),
        ),
    }


def only(events: tuple[LifecycleEvent, ...]) -> LifecycleEvent:
    (event,) = events
    return event


EVENTS = every_factory()


def test_the_schema_is_valid_json_schema_2020_12() -> None:
    VALIDATOR.check_schema(SCHEMA)


@pytest.mark.parametrize("name", list(EVENTS))
def test_every_factory_makes_an_event_the_schema_accepts(name: str) -> None:
    assert schema_errors(as_sent(EVENTS[name])) == []


def test_the_factories_cover_every_event_type_the_schema_names() -> None:
    assert {event.type for event in EVENTS.values()} == set(LifecycleEventType)
    assert SCHEMA["properties"]["type"]["enum"] == [t.value for t in LifecycleEventType]
    assert sorted(branch["properties"]["type"]["const"] for branch in SCHEMA["oneOf"]) == sorted(LifecycleEventType)


def test_subscription_enabled_has_one_shape_whoever_caused_it() -> None:
    shapes = {
        name: (sorted(event.data), event.subject.split("/")[:2])
        for name, event in EVENTS.items()
        if event.type == LifecycleEventType.SUBSCRIPTION_ENABLED
    }

    assert len(shapes) == 3
    assert len(set(map(str, shapes.values()))) == 1


def test_an_event_paid_by_a_settlement_names_the_settlement_and_the_method_that_paid() -> None:
    event = EVENTS["enabled by a settlement"]

    assert event.subject == "/accounts/acc-1/subscriptions/sub-1"
    assert event.data == {
        "accountId": "acc-1",
        "subscriptionId": "sub-1",
        "service": "Virtual Machines",
        "state": "Enabled",
        "enabledAt": "2027-01-20T09:30:00Z",
        "reason": "balance_settled",
        "settlementId": SETTLEMENT_ID,
        "paymentMethodId": "pm-new",
    }


def test_a_healed_subscription_names_no_settlement() -> None:
    data = EVENTS["enabled by healing"].data

    assert (data["reason"], data["settlementId"], data["paymentMethodId"]) == ("self_healed", None, None)


def test_a_disabled_event_names_the_deletion_day_of_the_policy() -> None:
    event = EVENTS["disabled"]

    assert event.subject == "/accounts/acc-1/subscriptions/sub-1"
    assert event.data["disabledAt"] == "2027-02-04T02:00:00Z"
    assert (
        event.data["deletionDate"] == (DISABLED_AT.date() + timedelta(days=POLICY.effective_retention_days)).isoformat()
    )


def test_payment_method_replaced_is_about_the_method_that_paid() -> None:
    event = EVENTS["payment method replaced"]

    assert event.subject == "/accounts/acc-1/paymentMethods/pm-new"
    assert event.data["previousPaymentMethodId"] == "pm-visa"
    assert event.data["subscriptionIds"] == ["sub-1", "sub-2"]
    assert event.data["paymentMethodKind"] == "card"


def test_an_undeliverable_address_event_names_the_address_the_reason_and_the_email() -> None:
    event = EVENTS["address undeliverable"]

    assert event.subject == "/accounts/acc-1/notificationAddress"
    assert event.time == BOUNCED_AT + timedelta(seconds=3)
    assert event.data == {
        "accountId": "acc-1",
        "notificationEmail": "billing@contoso.example",
        "reason": "bounced",
        "statusDetail": "550 5.1.1 mailbox unavailable",
        "messageId": MESSAGE_ID,
        "reportedAt": "2027-01-04T10:00:42Z",
    }


def test_an_undeliverable_address_event_id_follows_the_rule_of_events_with_a_cause_of_their_own() -> None:
    expected = hashlib.sha256(f"{MESSAGE_ID}|notification_address.undeliverable|acc-1".encode()).hexdigest()[:32]
    undeliverable = LifecycleEventType.NOTIFICATION_ADDRESS_UNDELIVERABLE
    other = EmailDelivery(message_id="another-message")

    assert EVENTS["address undeliverable"].id == f"le-{expected}"
    assert event_id(undeliverable, other, ACCOUNT, ACCOUNT) != EVENTS["address undeliverable"].id


def test_the_schema_lists_the_reasons_an_address_is_undeliverable() -> None:
    reasons = SCHEMA["$defs"]["notificationAddressUndeliverableData"]["properties"]["reason"]["enum"]

    assert reasons == list(get_args(UndeliverableReason))


# Ids as the two emitters published them before they shared this module (computed with the code of be2883c):
# a changed id would make every consumer see an old event as new.
@pytest.mark.parametrize(
    ("name", "published_id"),
    [
        ("enabled by a settlement", "le-97bcc76d24bfbc6c57bccdfdfe05db39"),
        ("payment method replaced", "le-c55c582f9b554a0cee941d5fbaf84fe7"),
        ("disabled", "ret.subscription.disabled.20270104T100000Z.acc-1.sub-1"),
        ("enabled by healing", "ret.subscription.enabled.20270104T100000Z.acc-1.sub-1"),
        ("deleted", "ret.subscription.deleted.20270204T020000Z.acc-1.sub-1"),
    ],
)
def test_event_ids_are_the_ids_published_before_the_unification(name: str, published_id: str) -> None:
    assert EVENTS[name].id == published_id


def test_a_retention_event_id_too_long_for_a_table_key_hashes_its_tail_as_before() -> None:
    account_id, subscription_id = "acc-" + "a" * 60, "sub-" + "b" * 60

    key = event_id(
        LifecycleEventType.SUBSCRIPTION_DELETED, RetentionStep(reference=FAILED_AT), account_id, subscription_id
    )

    assert key == "ret.subscription.deleted.20270104T100000Z.06b5bb501ea0b4241f5db53f0d58422731291be7"


def test_the_same_cause_gives_the_same_id_and_another_cause_another() -> None:
    settlement = succeeded_settlement()
    enabled = LifecycleEventType.SUBSCRIPTION_ENABLED
    step = RetentionStep(reference=FAILED_AT)

    assert event_id(enabled, settlement, ACCOUNT, "sub-1") == event_id(enabled, settlement, ACCOUNT, "sub-1")
    assert event_id(enabled, settlement, ACCOUNT, "sub-1") != event_id(enabled, settlement, ACCOUNT, "sub-2")
    other = settlement.model_copy(update={"id": "stl-other"})
    assert event_id(enabled, settlement, ACCOUNT, "sub-1") != event_id(enabled, other, ACCOUNT, "sub-1")
    assert event_id(enabled, step, ACCOUNT, "sub-1") != event_id(enabled, step, "acc-2", "sub-1")
    later = RetentionStep(reference=FAILED_AT + timedelta(days=40))
    assert event_id(enabled, step, ACCOUNT, "sub-1") != event_id(enabled, later, ACCOUNT, "sub-1")


def test_a_factory_refuses_a_subscription_in_the_wrong_state() -> None:
    with pytest.raises(ValidationError):
        subscription_enabled(
            ACCOUNT, past_due(), cause=succeeded_settlement(), reason=TransitionReason.BALANCE_SETTLED, at=PAID_AT
        )
    with pytest.raises(ValidationError):
        subscription_disabled(ACCOUNT, past_due(), POLICY, cause=RetentionStep(reference=FAILED_AT), at=DISABLED_AT)


def test_enabling_for_a_reason_that_does_not_enable_is_refused() -> None:
    enabled = past_due().reenable(TransitionReason.BALANCE_SETTLED, PAID_AT)

    with pytest.raises(ValidationError):
        subscription_enabled(
            ACCOUNT, enabled, cause=succeeded_settlement(), reason=TransitionReason.PAYMENT_FAILED, at=PAID_AT
        )


def test_the_schema_lists_the_enabling_reasons_and_method_kinds_of_the_models() -> None:
    definitions = SCHEMA["$defs"]

    assert definitions["subscriptionEnabledData"]["properties"]["reason"]["enum"] == list(get_args(EnablingReason))
    kinds = definitions["paymentMethodReplacedData"]["properties"]["paymentMethodKind"]["enum"]
    assert kinds == [k.value for k in PaymentMethodKind]


@pytest.mark.parametrize("definition", list(DATA_MODELS))
def test_each_data_shape_of_the_schema_has_exactly_the_fields_of_its_model_all_required(definition: str) -> None:
    ours = SCHEMA["$defs"][definition]
    theirs = DATA_MODELS[definition].model_json_schema(by_alias=True)

    assert set(ours["properties"]) == set(theirs["properties"])
    assert sorted(ours["required"]) == sorted(ours["properties"])
    assert sorted(theirs["required"]) == sorted(theirs["properties"])
    assert ours["additionalProperties"] is False


DELETE = object()


def mutated(name: str, path: tuple[str, ...], value: Any) -> dict[str, Any]:
    document = copy.deepcopy(as_sent(EVENTS[name]))
    target = document
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


@pytest.mark.parametrize(
    ("name", "path", "value", "complaint"),
    [
        # The drift the schema exists to catch: retention's subject without the leading slash ...
        ("disabled", ("subject",), "accounts/acc-1/subscriptions/sub-1", "subject: 'accounts/acc-1/subscriptions"),
        # ... and a subscription.enabled without the settlement fields.
        ("enabled by healing", ("data", "settlementId"), DELETE, "data: 'settlementId' is a required property"),
        ("enabled by a settlement", ("data", "service"), DELETE, "data: 'service' is a required property"),
        ("enabled by a settlement", ("data", "extra"), "not in the contract", "data: Additional properties"),
        ("enabled by a settlement", ("type",), "subscription.disabled", "data: 'disabledAt' is a required property"),
        ("enabled by a settlement", ("data", "state"), "Disabled", "data/state: 'Enabled' was expected"),
        ("enabled by a settlement", ("data", "reason"), "payment_failed", "data/reason: 'payment_failed' is not one"),
        ("disabled", ("data", "deletionDate"), "2027-05-05T02:00:00Z", "data/deletionDate: '2027-05-05T02:00:00Z'"),
        ("disabled", ("time",), "2027-02-04T03:00:00+01:00", "time: '2027-02-04T03:00:00+01:00' does not match"),
        ("deleted", ("source",), "/elsewhere", "source: '/pastdue' was expected"),
        ("deleted", ("traceparent",), "00-abc", "<root>: Additional properties are not allowed ('traceparent'"),
        ("payment method replaced", ("subject",), "/accounts/acc-1/subscriptions/sub-1", "subject: '/accounts/"),
        ("payment method replaced", ("data", "subscriptionIds"), [], "data/subscriptionIds: [] should be non-empty"),
        ("address undeliverable", ("data", "reason"), "quarantined", "data/reason: 'quarantined' is not one"),
        ("address undeliverable", ("data", "notificationEmail"), DELETE, "data: 'notificationEmail' is a required"),
        ("address undeliverable", ("subject",), "/accounts/acc-1", "subject: '/accounts/acc-1' does not match"),
    ],
)
def test_the_schema_refuses_an_event_that_leaves_the_contract(
    name: str, path: tuple[str, ...], value: Any, complaint: str
) -> None:
    errors = schema_errors(mutated(name, path, value))

    assert any(error.startswith(complaint) for error in errors), errors


def test_dates_in_the_data_are_utc_whatever_the_zone_of_the_moment() -> None:
    just_after_midnight_in_athens = datetime(2027, 2, 5, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    subscription = past_due().transition(
        SubscriptionState.DISABLED, TransitionReason.GRACE_PERIOD_ENDED, just_after_midnight_in_athens
    )

    event = subscription_disabled(
        ACCOUNT, subscription, POLICY, cause=RetentionStep(reference=FAILED_AT), at=just_after_midnight_in_athens
    )

    assert event.data["disabledAt"] == "2027-02-04T23:30:00Z"
    assert (
        event.data["deletionDate"] == (date(2027, 2, 4) + timedelta(days=POLICY.effective_retention_days)).isoformat()
    )


# --- a payment_method.replaced too long for one queue message is sent in parts ---------------------------------


def test_a_settlement_that_moved_more_subscriptions_than_one_event_lists_sends_them_in_parts() -> None:
    moved = tuple(f"sub-{n:04d}" for n in range(1, 1002))
    whole = only(payment_method_replaced(ACCOUNT, succeeded_settlement(), at=PAID_AT))

    parts = payment_method_replaced(ACCOUNT, succeeded_settlement(switched=moved), at=PAID_AT)

    assert len(parts) == -(-len(moved) // MAX_SUBSCRIPTIONS_PER_EVENT) == 5
    assert [event.id for event in parts] == [f"{whole.id}.part{n}of5" for n in range(1, 6)]
    assert [(event.data["part"], event.data["parts"]) for event in parts] == [(n, 5) for n in range(1, 6)]
    assert [sid for event in parts for sid in event.data["subscriptionIds"]] == list(moved)  # type: ignore[union-attr]
    for event in parts:
        assert schema_errors(as_sent(event)) == []
        assert (event.type, event.subject, event.time) == (whole.type, whole.subject, whole.time)
        assert {k: v for k, v in event.data.items() if k not in {"subscriptionIds", "part", "parts"}} == {
            k: v for k, v in whole.data.items() if k not in {"subscriptionIds", "part", "parts"}
        }


def test_one_event_is_sent_whole_with_its_published_id_up_to_the_limit() -> None:
    moved = tuple(f"sub-{n:04d}" for n in range(MAX_SUBSCRIPTIONS_PER_EVENT))

    (event,) = payment_method_replaced(ACCOUNT, succeeded_settlement(switched=moved), at=PAID_AT)

    assert event.id == "le-c55c582f9b554a0cee941d5fbaf84fe7"
    assert (event.data["part"], event.data["parts"]) == (1, 1)


def test_the_largest_part_with_the_longest_ids_still_fits_one_queue_message() -> None:
    longest = "a" * 128
    moved = tuple(f"{n:04d}{'s' * 124}" for n in range(MAX_SUBSCRIPTIONS_PER_EVENT))
    settlement = succeeded_settlement(switched=moved).model_copy(
        update={"id": "stl-" + "0" * 124, "payment_method_id": "p" * 128, "failed_payment_method_id": "f" * 128}
    )

    (event,) = payment_method_replaced(longest, settlement, at=PAID_AT)

    assert schema_errors(as_sent(event)) == []
    packing = pack_batches([event])
    assert (len(packing.batches), packing.oversized) == (1, ())


def test_the_schema_refuses_a_part_listing_more_subscriptions_than_the_limit() -> None:
    too_many = [f"sub-{n:04d}" for n in range(MAX_SUBSCRIPTIONS_PER_EVENT + 1)]

    errors = schema_errors(mutated("payment method replaced", ("data", "subscriptionIds"), too_many))

    assert any(error.startswith("data/subscriptionIds: [") and "is too long" in error for error in errors), errors
