"""The portal's billing-email screen and banner: each email's status and reason, the advice that fits it, de-DE."""

from __future__ import annotations

import re
from typing import Any

from tests.support.portal_api_stub import ApiStub
from tests.unit.test_portal_app import OVERVIEW, QUOTE, Browser, browser, stub, text

__all__ = ["browser", "stub"]  # the fixtures, shared with the portal app tests

UNDELIVERABLE = {
    "id": "notification-address-undeliverable",
    "kind": "notification_address_undeliverable",
    "paymentMethodId": None,
    "subscriptionIds": [],
    "createdAt": "2026-01-05T09:00:00Z",
    "effectiveDate": None,
    "notificationEmail": "billing@contoso.example",
    "reason": "bounced",
    "statusDetail": "550 5.1.1 mailbox unavailable",
}


def email(notification_id: str, status: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": notification_id,
        "template": "payment_failed",
        "status": status,
        "attempts": 1,
        "createdAt": "2026-01-05T09:00:00Z",
        "sentAt": "2026-01-05T09:00:02Z",
        "lastError": None,
        "messageId": f"msg-{notification_id}",
        "statusDetail": None,
        **fields,
    }


def notification_view(locale: str, *emails: dict[str, Any]) -> dict[str, Any]:
    return {
        "notificationEmail": "billing@contoso.example",
        "locale": locale,
        "changed": False,
        "lastNotifications": list(emails),
    }


def row(page: str, notification_id: str) -> str:
    match = re.search(rf'<tr data-status="[a-z_]+" data-message-id="msg-{notification_id}">(.*?)</tr>', page, re.S)
    assert match is not None, page
    return match.group(1)


def test_an_undeliverable_address_is_a_danger_banner_naming_the_address_and_the_reason(
    browser: Browser, stub: ApiStub
) -> None:
    stub.answer("overview", {**OVERVIEW, "alerts": [UNDELIVERABLE]})
    browser.sign_in("user-7")

    page = text(browser.get("/accounts/acc-1001"))

    banner = re.search(
        r'<div class="banner banner-danger" role="alert" data-alert-kind="notification_address_undeliverable">'
        r"\s*<p>(.*?)</p>",
        page,
    )
    assert banner is not None, page
    assert banner.group(1) == (
        "Factuur-e-mails aan billing@contoso.example kunnen niet worden bezorgd: de ontvangende mailserver weigert ze "
        "(550 5.1.1 mailbox unavailable). Werk uw meldingsadres bij."
    )


def test_each_email_shows_its_status_and_reason_with_advice_only_where_it_fits(browser: Browser, stub: ApiStub) -> None:
    stub.answer(
        "notification-email",
        notification_view(
            "en-US",
            email("1", "delivered", statusDetail="250 2.0.0 OK"),
            email("2", "bounced", statusDetail="550 5.1.1 mailbox unavailable"),
            email("3", "filtered_spam", statusDetail="spam score too high"),
            email("4", "sent"),
        ),
    )
    browser.sign_in("user-7")

    page = text(browser.get("/accounts/acc-1001/notifications"))

    delivered, bounced, spam, sent = (row(page, n) for n in "1234")
    assert "Delivered" in delivered
    assert "250 2.0.0 OK" in delivered
    assert "junk or spam folder" in delivered
    assert "Refused by the receiver" in bounced
    assert "550 5.1.1 mailbox unavailable" in bounced
    assert "enter another address above" in bounced
    assert "junk" not in bounced
    assert "Stopped as spam" in spam
    assert "junk" not in spam
    assert "another address" not in spam
    assert 'class="advice"' not in sent
    assert "<code>msg-4</code>" in sent
    assert page.count("junk or spam folder") == 1
    assert page.count("enter another address above") == 1


def test_a_german_account_reads_the_portal_in_german_with_german_amounts(browser: Browser, stub: ApiStub) -> None:
    stub.answer("overview", OVERVIEW)
    stub.answer("settlement/quote", QUOTE)
    stub.answer("notification-email", notification_view("de-DE", email("1", "delivered")))
    browser.sign_in("user-7")

    overview = text(browser.get("/accounts/acc-1001"))
    settle = text(browser.get("/accounts/acc-1001/settle?subscription=sub-a"))
    emails = text(browser.get("/accounts/acc-1001/notifications"))

    assert '<html lang="de">' in overview
    assert (
        "Die Zahlung mit Visa •••• 4242 ist fehlgeschlagen. Production wird am 4. Februar 2026 deaktiviert" in overview
    )
    assert "49,95\u00a0€" in overview
    assert "62,45\u00a0€ bezahlen" in settle
    assert "Im Postfach zugestellt" in emails
