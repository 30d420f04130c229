"""The retention emails render in English and Dutch from the context the retention plan gives them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from shared.domain.email import RenderedEmail
from shared.domain.lifecycle import SubscriptionState, TransitionReason
from shared.domain.model import Account, Charge, DeclineReason, PaymentMethod, PaymentMethodKind, Subscription
from shared.domain.money import Money
from shared.domain.outbox import Notification
from shared.domain.partition import AccountPartition
from shared.domain.retention_plan import Template, plan_account
from shared.domain.retention_policy import RetentionPolicy
from shared.email import EmailRenderer

FAILED_AT = datetime(2027, 1, 4, 10, 0, tzinfo=UTC)
NAME = "Ada's <b>prod</b> & co"
LOCALES = ["en-US", "nl-NL"]


def emails_of_a_whole_timeline(locale: str, decline: DeclineReason) -> dict[str, RenderedEmail]:
    """Plan every milestone night of one subscription in memory and render each email it records."""
    partition = AccountPartition(account_id="acc-1")
    partition.set_account(
        Account(
            id="acc-1", admin_principal_id="a", notification_email="ada@contoso.example", locale=locale, currency="EUR"
        )
    )
    method = PaymentMethod(id="pm-1", kind=PaymentMethodKind.CARD, brand="visa", last4="4242").mark_failed(
        decline, FAILED_AT
    )
    subscription = Subscription(id="sub-1", name=NAME, service="Virtual Machines", payment_method_id="pm-1")
    partition.put(
        method,
        subscription.transition(SubscriptionState.PAST_DUE, TransitionReason.PAYMENT_FAILED, FAILED_AT),
        Charge(
            invoice_id="inv-1",
            subscription_id="sub-1",
            service="Virtual Machines",
            amount=Money(minor=123_456_78, currency="EUR"),
            due_date=date(2027, 1, 1),
            payment_method_id="pm-1",
        ),
    )
    for night in (8, 15, 26, 31, 91, 114, 120, 121):
        plan_account(
            partition, RetentionPolicy(), FAILED_AT + timedelta(days=night), portal_url="https://portal.example"
        )
    renderer = EmailRenderer()
    return {
        n.template: renderer.render(n.template, n.locale, n.context)
        for n in sorted(partition.all(Notification), key=lambda n: n.created_at)
    }


@pytest.mark.parametrize("locale", LOCALES)
def test_every_retention_email_renders_subject_text_and_html_in_the_account_language(locale: str) -> None:
    emails = emails_of_a_whole_timeline(locale, DeclineReason.INSUFFICIENT_FUNDS)

    assert set(emails) == {
        Template.REMINDER,
        Template.FINAL_NOTICE,
        Template.DISABLED,
        Template.DELETION_WARNING,
        Template.DELETED,
    }
    for email in emails.values():
        assert email.subject
        assert "{{" not in email.plain_text + email.html
        assert f'lang="{locale}"' in email.html


def test_the_english_emails_name_the_dates_and_the_amount() -> None:
    emails = emails_of_a_whole_timeline("en-US", DeclineReason.INSUFFICIENT_FUNDS)

    assert emails[Template.REMINDER].subject == f"Payment reminder: {NAME} will be cancelled on February 3, 2027"
    assert "€123,456.78" in emails[Template.REMINDER].plain_text
    assert "https://portal.example/accounts/acc-1/settle?subscription=sub-1" in emails[Template.REMINDER].plain_text
    assert "February 3, 2027" in emails[Template.FINAL_NOTICE].subject
    assert "deleted on May 5, 2027" in emails[Template.DISABLED].subject
    assert "in 1 day)" in emails[Template.DELETION_WARNING].plain_text
    assert emails[Template.DELETED].subject == "Subscription sub-1 and its data have been deleted"


def test_the_dutch_emails_use_dutch_dates_and_amounts() -> None:
    emails = emails_of_a_whole_timeline("nl-NL", DeclineReason.INSUFFICIENT_FUNDS)

    assert emails[Template.REMINDER].subject == f"Betalingsherinnering: {NAME} wordt op 3 februari 2027 opgezegd"
    assert "€\u00a0123.456,78" in emails[Template.REMINDER].plain_text
    assert "op 5 mei 2027 verwijderd" in emails[Template.DISABLED].subject
    assert "(over 1 dag)" in emails[Template.DELETION_WARNING].plain_text
    assert "4 mei" not in emails[Template.DELETION_WARNING].subject


@pytest.mark.parametrize(
    ("locale", "wording"),
    [("en-US", "update your payment method"), ("nl-NL", "werk uw betaalmethode bij")],
)
def test_a_hard_decline_changes_the_wording_to_update_the_payment_method(locale: str, wording: str) -> None:
    hard = emails_of_a_whole_timeline(locale, DeclineReason.STOLEN_CARD)
    soft = emails_of_a_whole_timeline(locale, DeclineReason.INSUFFICIENT_FUNDS)

    for template in (Template.REMINDER, Template.FINAL_NOTICE, Template.DISABLED):
        assert wording in hard[template].plain_text.lower()
        assert wording not in soft[template].plain_text.lower()
    assert "Visa •••• 4242" in hard[Template.REMINDER].html


def test_the_subscription_name_is_escaped_in_html_and_kept_as_is_in_text() -> None:
    reminder = emails_of_a_whole_timeline("en-US", DeclineReason.INSUFFICIENT_FUNDS)[Template.REMINDER]

    assert "Ada&#39;s &lt;b&gt;prod&lt;/b&gt; &amp; co" in reminder.html
    assert "<b>prod</b>" not in reminder.html
    assert NAME in reminder.plain_text


@pytest.mark.parametrize("locale", LOCALES)
def test_the_re_enabled_email_renders(locale: str) -> None:
    context = {
        "subscription_id": "sub-1",
        "subscription_name": NAME,
        "service": "VMs",
        "portal_url": "https://p.example",
    }

    email = EmailRenderer().render(Template.REENABLED, locale, context)

    assert email.subject == (f"{NAME} is active again" if locale == "en-US" else f"{NAME} is weer actief")
