"""schemas/payment-events.schema.json and the pydantic event models describe the same contract."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from shared.domain.model import DeclineReason, PaymentMethodKind
from shared.domain.money import MINOR_UNIT_EXPONENTS
from shared.domain.payment_events import (
    AccountSnapshot,
    AccountUpdatedData,
    AccountUpdatedEvent,
    FailedPaymentMethod,
    PaymentFailedData,
    PaymentFailedEvent,
    PaymentReceivedData,
    PaymentReceivedEvent,
    SubscriptionOnMethod,
    UnpaidCharge,
)
from shared.events.decoding import EVENT_TYPES, InvalidEventError, decode_payment_event
from tests.support.payment_events import ISSUE_PAYMENT_FAILED_EXAMPLE, ISSUE_PAYMENT_RECEIVED_EXAMPLE, body_of

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "payment-events.schema.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
DEFINITION_OF: dict[str, type[BaseModel]] = {
    "account": AccountSnapshot,
    "paymentMethod": FailedPaymentMethod,
    "charge": UnpaidCharge,
    "subscription": SubscriptionOnMethod,
    "paymentFailedData": PaymentFailedData,
    "paymentReceivedData": PaymentReceivedData,
    "accountUpdatedData": AccountUpdatedData,
}
ACCOUNT_UPDATED_EXAMPLE: dict[str, Any] = {
    "specversion": "1.0",
    "id": "evt-0003",
    "type": "account.updated",
    "source": "/billing-engine",
    "time": "2026-11-25T08:30:00Z",
    "data": {"accountId": "acc-1001", "adminPrincipalId": "user-8", "notificationEmail": "ap@contoso.example"},
}
CONSTRAINTS = ("pattern", "minLength", "maxLength", "minItems", "maxItems")


def resolved(node: dict[str, Any]) -> dict[str, Any]:
    """A property of the schema with its local `$ref` followed."""
    if "$ref" not in node:
        return node
    target = SCHEMA
    for part in node["$ref"].removeprefix("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def test_the_issue_examples_are_valid_events_for_the_models() -> None:
    failed = decode_payment_event(body_of(ISSUE_PAYMENT_FAILED_EXAMPLE))
    received = decode_payment_event(body_of(ISSUE_PAYMENT_RECEIVED_EXAMPLE))

    assert isinstance(failed, PaymentFailedEvent)
    assert failed.data.payment_method.last4 == "4242"
    assert [s.id for s in failed.data.subscriptions] == ["sub-a", "sub-b"]
    assert isinstance(received, PaymentReceivedEvent)
    assert received.data.money.minor == 4995


def test_the_issue_examples_validate_against_the_json_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator_class = jsonschema.Draft202012Validator
    validator_class.check_schema(SCHEMA)
    validator = validator_class(SCHEMA, format_checker=validator_class.FORMAT_CHECKER)

    validator.validate(ISSUE_PAYMENT_FAILED_EXAMPLE)
    validator.validate(ISSUE_PAYMENT_RECEIVED_EXAMPLE)
    validator.validate(ACCOUNT_UPDATED_EXAMPLE)
    assert isinstance(decode_payment_event(body_of(ACCOUNT_UPDATED_EXAMPLE)), AccountUpdatedEvent)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("type",), "payment.refunded"),
        (("data", "charges", 0, "amount"), "-49.95"),
        (("data", "charges", 0, "amount"), "0.00"),
        (("data", "charges", 0, "amount"), "0"),
        (("data", "charges", 0, "currency"), "XYZ"),
        (("data", "account", "locale"), "dutch"),
        (("data", "reason"), "aliens"),
        (("data", "paymentMethod", "gatewayToken"), "4242 4242 4242 4242"),
        (("data", "paymentMethod", "gatewayToken"), "tok/../visa"),
    ],
)
def test_the_json_schema_refuses_what_the_models_refuse(path: tuple[str | int, ...], value: str) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    document = copy.deepcopy(ISSUE_PAYMENT_FAILED_EXAMPLE)
    target: Any = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMA).validate(document)


def test_the_schema_lists_the_currencies_decline_reasons_and_method_kinds_of_the_models() -> None:
    definitions = SCHEMA["$defs"]

    assert definitions["currency"]["enum"] == sorted(MINOR_UNIT_EXPONENTS)
    assert definitions["paymentFailedData"]["properties"]["reason"]["enum"] == [r.value for r in DeclineReason]
    assert definitions["paymentMethod"]["properties"]["kind"]["enum"] == [k.value for k in PaymentMethodKind]
    assert SCHEMA["properties"]["type"]["enum"] == list(EVENT_TYPES)


@pytest.mark.parametrize("definition", list(DEFINITION_OF))
def test_each_schema_object_has_the_fields_required_fields_and_constraints_of_its_model(definition: str) -> None:
    ours = SCHEMA["$defs"][definition]
    theirs = DEFINITION_OF[definition].model_json_schema(by_alias=True)

    assert set(ours["properties"]) == set(theirs["properties"])
    assert sorted(ours["required"]) == sorted(theirs.get("required", []))
    for name, generated in theirs["properties"].items():
        mine = resolved(ours["properties"][name])
        generated_constraints = {key: generated[key] for key in CONSTRAINTS if key in generated}
        for variant in generated.get("anyOf", []):
            generated_constraints |= {key: variant[key] for key in CONSTRAINTS if key in variant}
        assert {key: mine[key] for key in CONSTRAINTS if key in mine} == generated_constraints, name


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("time",), None),
        (("data", "accountId"), "acc/1"),
        (("data", "notificationEmail"), "no at-sign"),
        (("data", "adminPrincipalId"), None),
    ],
)
def test_the_json_schema_refuses_an_account_updated_the_models_refuse(path: tuple[str, ...], value: str | None) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    document = copy.deepcopy(ACCOUNT_UPDATED_EXAMPLE)
    target: Any = document
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
        if path[-1] == "adminPrincipalId":
            del target["notificationEmail"]
    else:
        target[path[-1]] = value
    validator_class = jsonschema.Draft202012Validator

    with pytest.raises(jsonschema.ValidationError):
        validator_class(SCHEMA, format_checker=validator_class.FORMAT_CHECKER).validate(document)
    with pytest.raises(InvalidEventError):
        decode_payment_event(body_of(document))


def test_a_gateway_token_is_optional_and_kept_on_the_failed_method() -> None:
    document = copy.deepcopy(ISSUE_PAYMENT_FAILED_EXAMPLE)
    document["data"]["paymentMethod"]["gatewayToken"] = "tok_visa"

    with_token = decode_payment_event(body_of(document))
    without = decode_payment_event(body_of(ISSUE_PAYMENT_FAILED_EXAMPLE))

    assert isinstance(with_token, PaymentFailedEvent)
    assert isinstance(without, PaymentFailedEvent)
    assert with_token.data.payment_method.to_payment_method().gateway_token == "tok_visa"
    assert without.data.payment_method.to_payment_method().gateway_token is None
