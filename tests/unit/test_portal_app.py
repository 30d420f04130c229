from __future__ import annotations

import hmac
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portal.api import SettleApi
from portal.app import PortalApp, Request, Response
from portal.principals import Directory, demo_accounts
from portal.sessions import COOKIE_NAME, MAX_SESSIONS
from portal.signing import signing_key
from portal.views import payment_method_body
from shared.settings import LOCAL_WEBHOOK_SECRET
from tests.support.portal_api_stub import ApiStub, running_api_stub

OVERVIEW: dict[str, Any] = {
    "accountId": "acc-1001",
    "currency": "EUR",
    "subscriptions": [
        {
            "id": "sub-a",
            "name": "Production",
            "service": "Azure",
            "state": "PastDue",
            "paymentMethodId": "pm-visa-4242",
            "outstanding": {"amount": "49.95", "currency": "EUR"},
            "canSettle": True,
            "dates": {
                "nextRetry": "2026-01-08T10:00:00Z",
                "warning": "2026-01-30T10:00:00Z",
                "cancellation": "2026-02-04T10:00:00Z",
                "deletion": "2026-05-05T10:00:00Z",
            },
        },
        {
            "id": "sub-b",
            "name": "Dev/Test",
            "service": "Azure",
            "state": "Enabled",
            "paymentMethodId": "pm-visa-4242",
            "outstanding": {"amount": "0.00", "currency": "EUR"},
            "canSettle": False,
            "dates": {"nextRetry": None, "warning": None, "cancellation": None, "deletion": None},
        },
    ],
    "alerts": [
        {
            "id": "payment-failed:pm-visa-4242",
            "kind": "payment_failed",
            "paymentMethodId": "pm-visa-4242",
            "subscriptionIds": ["sub-a"],
            "createdAt": "2026-01-05T09:00:00Z",
            "effectiveDate": "2026-02-04",
        }
    ],
    "paymentMethods": [
        {"id": "pm-mc-5555", "kind": "card", "brand": "mastercard", "last4": "5555", "status": "active"},
        {"id": "pm-visa-4242", "kind": "card", "brand": "visa", "last4": "4242", "status": "failed"},
    ],
}
QUOTE: dict[str, Any] = {
    "quoteVersion": "q1-aaa",
    "subscriptionId": "sub-a",
    "failedPaymentMethodId": "pm-visa-4242",
    "selectedPaymentMethodId": "pm-visa-4242",
    "total": {"amount": "62.45", "currency": "EUR"},
    "lines": [
        {"subscriptionId": "sub-a", "service": "Azure", "invoiceId": "inv-1", "amount": "49.95", "currency": "EUR"},
        {"subscriptionId": "sub-c", "service": "Microsoft 365", "invoiceId": "inv-2", "amount": "12.50"},
    ],
}


class Browser:
    """Keeps the session cookie between requests to the app, like a browser would."""

    def __init__(self, app: PortalApp) -> None:
        self.app = app
        self.cookies: dict[str, str] = {}

    def get(self, path: str) -> Response:
        url = urllib.parse.urlsplit(path)
        query = dict(urllib.parse.parse_qsl(url.query))
        return self._send(Request("GET", url.path, query=query, cookies=dict(self.cookies)))

    def post(self, path: str, form: dict[str, str], *, csrf: bool = True) -> Response:
        if csrf:
            form = {"csrf": self.csrf(), **form}
        return self._send(Request("POST", path, form=form, cookies=dict(self.cookies)))

    def csrf(self) -> str:
        session = self.app.sessions.get(self.cookies.get(COOKIE_NAME))
        assert session is not None
        return session.csrf_token

    def sign_in(self, principal: str = "user-7") -> None:
        self.get("/signin")
        assert self.post("/signin", {"principal": principal}).status == 303

    def _send(self, request: Request) -> Response:
        response = self.app.handle(request)
        for name, value in response.headers:
            if name == "Set-Cookie":
                cookie_name, _, rest = value.partition("=")
                self.cookies[cookie_name] = rest.split(";")[0]
        return response


def text(response: Response) -> str:
    return response.body.decode()


def location(response: Response) -> str:
    return dict(response.headers)["Location"]


@pytest.fixture
def stub() -> Iterator[ApiStub]:
    with running_api_stub() as api:
        yield api


@pytest.fixture
def browser(stub: ApiStub, tmp_path: Path) -> Browser:
    api = SettleApi(stub.url, signing_key=signing_key(LOCAL_WEBHOOK_SECRET), function_key="k")
    app = PortalApp(
        api, directory=Directory(demo_accounts()), outbox_dir=tmp_path, own_origins=("http://127.0.0.1:7072",)
    )
    return Browser(app)


def test_the_emails_settle_link_leads_through_sign_in_back_to_the_settle_pane(browser: Browser) -> None:
    link = "/accounts/acc-1001/settle?subscription=sub-a"

    first = browser.get(link)

    assert first.status == 303
    assert location(first) == "/signin?" + urllib.parse.urlencode({"next": link})
    assert f'name="next" value="{link}"' in text(browser.get(location(first))).replace("&amp;", "&")
    assert location(browser.post("/signin", {"principal": "user-7", "next": link})) == link


def test_sign_in_accepts_only_the_demo_admins_and_only_local_targets(browser: Browser) -> None:
    browser.get("/signin")

    refused = browser.post("/signin", {"principal": "mallory"})
    offsite = browser.post("/signin", {"principal": "user-9", "next": "//evil.example/x"})

    assert refused.status == 400
    assert "Choose who to act as." in text(refused)
    assert location(offsite) == "/accounts"


def test_a_post_without_the_sessions_form_token_is_refused_and_calls_nothing(browser: Browser, stub: ApiStub) -> None:
    browser.sign_in()

    refused = browser.post("/accounts/acc-1001/settle", {"method": "tok:tok_visa"}, csrf=False)

    assert refused.status == 403
    assert stub.calls == []


def test_the_overview_shows_states_amounts_and_banners_in_the_accounts_language(
    browser: Browser, stub: ApiStub
) -> None:
    stub.answer("overview", OVERVIEW)
    browser.sign_in("user-7")

    page = text(browser.get("/accounts/acc-1001"))

    assert '<html lang="nl">' in page
    assert "De betaling met Visa •••• 4242 is mislukt. Production wordt uitgeschakeld op 4 februari 2026" in page
    assert "Achterstallig" in page
    assert "€\u00a049,95" in page
    assert page.count("Saldo betalen</a>") == 1
    assert 'href="/accounts/acc-1001/settle?subscription=sub-a"' in page


@pytest.mark.parametrize(
    ("locale", "written"),
    [
        (
            "en-US",
            [
                ("nextRetry", "Next payment attempt", "January 8, 2026"),
                ("warning", "Final notice", "January 30, 2026"),
                ("cancellation", "Cancellation", "February 4, 2026"),
                ("deletion", "Data deletion", "May 5, 2026"),
            ],
        ),
        (
            "nl-NL",
            [
                ("nextRetry", "Volgende betaalpoging", "8 januari 2026"),
                ("warning", "Laatste herinnering", "30 januari 2026"),
                ("cancellation", "Opzegging", "4 februari 2026"),
                ("deletion", "Verwijdering van gegevens", "5 mei 2026"),
            ],
        ),
        (
            "de-DE",
            [
                ("nextRetry", "Nächster Zahlungsversuch", "8. Januar 2026"),
                ("warning", "Letzte Mahnung", "30. Januar 2026"),
                ("cancellation", "Kündigung", "4. Februar 2026"),
                ("deletion", "Löschung der Daten", "5. Mai 2026"),
            ],
        ),
    ],
)
def test_the_overview_shows_each_subscriptions_dates_in_the_accounts_locale(
    browser: Browser, stub: ApiStub, locale: str, written: list[tuple[str, str, str]]
) -> None:
    stub.answer("overview", OVERVIEW)
    stub.answer(
        "notification-email",
        {"notificationEmail": "billing@contoso.example", "locale": locale, "changed": False, "lastNotifications": []},
    )
    browser.sign_in("user-7")

    page = text(browser.get("/accounts/acc-1001"))

    row = page[page.index('id="subscription-sub-a"') : page.index('id="subscription-sub-b"')]
    shown = re.findall(r'data-date="(\w+)"><dt>([^<]+)</dt><dd><time datetime="([^"]+)">([^<]+)</time>', row)
    dates = OVERVIEW["subscriptions"][0]["dates"]
    assert shown == [(kind, words, dates[kind], day) for kind, words, day in written]
    other = page[page.index('id="subscription-sub-b"') :]
    assert "data-date=" not in other


def test_the_settle_pane_shows_the_quote_and_a_fresh_idempotency_key_per_render(
    browser: Browser, stub: ApiStub
) -> None:
    stub.answer("overview", OVERVIEW)
    stub.answer("settlement/quote", QUOTE)
    browser.sign_in()

    first = text(browser.get("/accounts/acc-1001/settle?subscription=sub-a"))
    second = text(browser.get("/accounts/acc-1001/settle?subscription=sub-a"))

    assert "inv-1" in first
    assert "inv-2" in first
    assert 'id="quote-total">€\u00a062,45<' in first
    assert "Betaal €\u00a062,45" in first
    assert "Mastercard •••• 5555" in first
    assert "Visa •••• 4242 (betaling mislukt)" in first
    assert "tok_insufficient_funds" in first
    keys = [re.search(r'name="idempotency_key" value="([^"]+)"', page) for page in (first, second)]
    assert keys[0] is not None
    assert keys[1] is not None
    assert keys[0].group(1) != keys[1].group(1)
    assert stub.calls_to("settlement/quote")[0].json == {
        "accountId": "acc-1001",
        "principalId": "user-7",
        "subscriptionId": "sub-a",
        "paymentMethodId": "pm-mc-5555",
    }


def test_pay_sends_the_quoted_total_and_shows_the_result(browser: Browser, stub: ApiStub) -> None:
    stub.answer("overview", OVERVIEW)
    stub.answer(
        "settlement",
        {
            "settlementId": "stl-1",
            "status": "succeeded",
            "reason": None,
            "charged": {"amount": "62.45", "currency": "EUR"},
            "reenabledSubscriptions": ["sub-a"],
            "activePaymentMethodId": "pm-mc-5555",
        },
    )
    browser.sign_in()
    form = {
        "subscription": "sub-a",
        "method": "pm:pm-mc-5555",
        "amount": "62.45",
        "currency": "EUR",
        "idempotency_key": "key-1",
        "step": "pay",
    }

    paid = browser.post("/accounts/acc-1001/settle", form)
    page = text(browser.get(location(paid)))

    (call,) = stub.calls_to("settlement")
    assert call.headers["idempotency-key"] == "key-1"
    assert call.json == {
        "accountId": "acc-1001",
        "principalId": "user-7",
        "idempotencyKey": "key-1",
        "subscriptionId": "sub-a",
        "paymentMethod": {"id": "pm-mc-5555"},
        "expectedTotal": {"amount": "62.45", "currency": "EUR"},
    }
    assert "Betaling van €\u00a062,45 ontvangen." in page
    assert "Production" in page
    assert "Actieve betaalmethode: Mastercard •••• 5555" in page


def test_a_stale_quote_shows_the_new_total_to_confirm(browser: Browser, stub: ApiStub) -> None:
    new_quote = {**QUOTE, "quoteVersion": "q1-bbb", "total": {"amount": "72.45", "currency": "EUR"}}
    stub.answer("overview", OVERVIEW)
    stub.answer("settlement", {"title": "The total changed", "status": 409, "quote": new_quote}, status=409)
    browser.sign_in()
    form = {"subscription": "sub-a", "method": "tok:tok_visa", "amount": "62.45", "currency": "EUR"}

    refused = browser.post("/accounts/acc-1001/settle", {**form, "idempotency_key": "k", "step": "pay"})

    assert refused.status == 409
    assert "Het nieuwe totaal is €\u00a072,45" in text(refused)
    assert 'name="amount" value="72.45"' in text(refused)
    assert 'value="tok:tok_visa" checked' in text(refused)


def test_an_api_problem_is_shown_as_a_readable_error_with_its_field(browser: Browser, stub: ApiStub) -> None:
    stub.answer("overview", OVERVIEW)
    stub.answer("settlement/quote", QUOTE)
    stub.answer(
        "settlement",
        {
            "title": "Invalid request",
            "status": 422,
            "detail": "the request does not match the API",
            "errors": [{"detail": "not a decimal string", "pointer": "#/expectedTotal/amount"}],
        },
        status=422,
    )
    browser.sign_in()
    form = {"subscription": "sub-a", "method": "tok:tok_visa", "amount": "x", "currency": "EUR"}

    refused = browser.post("/accounts/acc-1001/settle", {**form, "idempotency_key": "k", "step": "pay"})

    assert refused.status == 422
    assert "Invalid request: the request does not match the API" in text(refused)
    assert "Veld expectedTotal.amount: not a decimal string" in text(refused)


def test_acting_on_someone_elses_account_explains_why_it_is_refused(browser: Browser, stub: ApiStub) -> None:
    stub.answer("overview", {"title": "Forbidden", "status": 403, "detail": "not the admin"}, status=403)
    browser.sign_in("user-9")

    refused = browser.get("/accounts/acc-1001")

    assert refused.status == 403
    assert "You are not the admin of this account" in text(refused)


def test_review_keeps_the_chosen_method_and_charges_nothing(browser: Browser, stub: ApiStub) -> None:
    browser.sign_in()

    review = browser.post("/accounts/acc-1001/settle", {"subscription": "sub-a", "method": "invoice", "step": "review"})

    assert location(review) == "/accounts/acc-1001/settle?subscription=sub-a&method=invoice"
    assert stub.calls_to("settlement") == []


def test_the_receipts_billing_link_leads_to_the_overview(browser: Browser) -> None:
    browser.sign_in()

    assert location(browser.get("/accounts/acc-1001/billing")) == "/accounts/acc-1001"


@pytest.mark.parametrize(
    ("choice", "body"),
    [
        ("pm:pm-mc-5555", {"id": "pm-mc-5555"}),
        ("tok:tok_visa", {"token": "tok_visa"}),
        ("tok:tok_expired_card", {"token": "tok_expired_card"}),
        ("invoice", {"kind": "invoice"}),
        ("tok:4111111111111111", None),
        ("pm:", None),
        ("", None),
    ],
)
def test_only_offered_payment_choices_reach_the_api(choice: str, body: dict[str, str] | None) -> None:
    assert payment_method_body(choice) == body


def test_the_email_html_is_served_sandboxed_and_without_scripts(browser: Browser, tmp_path: Path) -> None:
    raw = (
        "From: a@example.com\r\nTo: b@example.com\r\nSubject: Hi\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        "--b\r\nContent-Type: text/html\r\n\r\n<p>hello</p><script>alert(1)</script>\r\n--b--\r\n"
    )
    (tmp_path / "20260101T000000Z__b-example.com__hi__0123456789abcdef.eml").write_text(raw)

    page = browser.get("/outbox/20260101T000000Z__b-example.com__hi__0123456789abcdef.eml")
    frame = browser.get("/outbox/20260101T000000Z__b-example.com__hi__0123456789abcdef.eml/html")

    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in text(page)
    assert "<p>hello</p>" in text(frame)
    assert "script" not in text(frame)
    assert dict(frame.headers)["Content-Security-Policy"].startswith("sandbox ")


def test_the_quote_version_goes_only_with_the_method_it_was_quoted_for(browser: Browser, stub: ApiStub) -> None:
    stub.answer("settlement", {"settlementId": "stl-1", "status": "pending", "activePaymentMethodId": "pm-invoice"})
    browser.sign_in()
    form = {"subscription": "sub-a", "amount": "62.45", "currency": "EUR", "quote_version": "q1-aaa", "step": "pay"}

    browser.post(
        "/accounts/acc-1001/settle", {**form, "method": "invoice", "quoted_method": "invoice", "idempotency_key": "a"}
    )
    browser.post(
        "/accounts/acc-1001/settle",
        {**form, "method": "invoice", "quoted_method": "pm:pm-mc-5555", "idempotency_key": "b"},
    )

    first, second = stub.calls_to("settlement")
    assert first.json["quoteVersion"] == "q1-aaa"
    assert "quoteVersion" not in second.json


@pytest.mark.parametrize(
    "target",
    [
        "/accounts\r\nSet-Cookie: portal_session=planted",
        "/accounts\nX-Injected: 1",
        "/accounts\rX-Injected: 1",
        "/accounts\x00",
        "/accounts\x7f",
        "/accounts\t/x",
        "/accounts /x",
    ],
)
def test_a_sign_in_target_with_control_characters_never_reaches_the_location_header(
    browser: Browser, target: str
) -> None:
    browser.get("/signin")

    signed_in = browser.post("/signin", {"principal": "user-7", "next": target})
    form = text(browser.get("/signin?" + urllib.parse.urlencode({"next": target})))

    assert location(signed_in) == "/accounts"
    assert 'name="next"' not in form


def test_signing_in_gives_a_new_session_id_and_the_old_one_signs_nobody_in(browser: Browser) -> None:
    browser.get("/signin")
    planted = browser.cookies[COOKIE_NAME]  # a fixation attack: the attacker knows this id before sign-in
    old_csrf = browser.csrf()

    browser.sign_in("user-7")

    assert browser.cookies[COOKIE_NAME] != planted
    assert browser.csrf() != old_csrf
    attacker = Browser(browser.app)
    attacker.cookies[COOKIE_NAME] = planted
    assert location(attacker.get("/accounts")).startswith("/signin")
    assert browser.get("/accounts").status == 200


def test_a_flood_of_cookieless_requests_does_not_sign_anyone_out(browser: Browser) -> None:
    browser.sign_in("user-7")
    other = Browser(browser.app)
    other.sign_in("user-9")

    for _ in range(2 * MAX_SESSIONS):
        assert browser.app.handle(Request("GET", "/")).status == 303

    assert browser.get("/accounts").status == 200
    assert other.get("/accounts").status == 200


def test_signing_in_again_and_again_as_one_admin_does_not_sign_out_another(browser: Browser) -> None:
    browser.sign_in("user-7")

    for _ in range(2 * MAX_SESSIONS):
        Browser(browser.app).sign_in("user-9")

    assert browser.get("/accounts").status == 200


def test_the_form_token_is_compared_in_constant_time(browser: Browser, monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[object, object]] = []
    real_compare = hmac.compare_digest

    def recording_compare(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real_compare(a, b)

    browser.sign_in()
    monkeypatch.setattr(hmac, "compare_digest", recording_compare)

    refused = browser.post("/signout", {"csrf": "not-the-token"}, csrf=False)
    odd = browser.post("/signout", {"csrf": "t\u00f6ken"}, csrf=False)

    assert (refused.status, odd.status) == (403, 403)
    assert len(compared) == 2
    assert browser.get("/accounts").status == 200


def test_the_outbox_never_links_an_emails_text_off_site(browser: Browser, tmp_path: Path) -> None:
    raw = (
        "From: a@example.com\r\nTo: b@example.com\r\nSubject: Hi\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain\r\n\r\n"
        "Subscription 'http://127.0.0.1:7072//evil.example/signin' is past due.\r\n"
        "Settle: http://127.0.0.1:7072/accounts/acc-1001/settle?subscription=sub-a\r\n"
    )
    (tmp_path / "20260101T000000Z__b-example.com__hi__0123456789abcdef.eml").write_text(raw)

    page = text(browser.get("/outbox/20260101T000000Z__b-example.com__hi__0123456789abcdef.eml"))

    assert 'href="/accounts/acc-1001/settle?subscription=sub-a"' in page
    assert not re.search(r'href="(//|[a-z]+:|\\)', page.replace('href="/static/', ""))


def test_the_overview_shows_a_hold_without_its_reason_and_the_automatic_payment_attempts(
    browser: Browser, stub: ApiStub
) -> None:
    overview = {
        **OVERVIEW,
        "hold": {"reason": "Dispute DX-17 (Jan)", "setBy": "cli-ops", "since": "2026-01-10T09:00:00Z", "until": None},
        "paymentRetries": [
            {
                "attempt": 1,
                "paymentMethodId": "pm-visa-4242",
                "at": "2026-01-06T10:00:00Z",
                "amount": {"amount": "62.45", "currency": "EUR"},
                "outcome": "declined",
                "declineReason": "insufficient_funds",
                "declineClass": "soft",
            },
            {
                "attempt": 2,
                "paymentMethodId": "pm-visa-4242",
                "at": "2026-01-08T10:00:00Z",
                "amount": {"amount": "62.45", "currency": "EUR"},
                "outcome": "approved",
                "declineReason": None,
                "declineClass": None,
            },
        ],
    }
    stub.answer("overview", overview)
    browser.sign_in("user-7")

    page = text(browser.get("/accounts/acc-1001"))

    assert 'id="hold"' in page
    assert "De inning voor dit account is sinds 10 januari 2026 gepauzeerd" in page
    assert "Dispute DX-17" not in page  # support's own words stay with support
    retries = page[page.index('id="payment-retries"') :]
    rows = re.findall(
        r'<tr data-outcome="(\w+)">\s*<td><time datetime="[^"]+">([^<]+)</time></td>\s*<td>(\d)</td>', retries
    )
    assert rows == [("declined", "6 januari 2026", "1"), ("approved", "8 januari 2026", "2")]
    assert "Geweigerd" in retries
    assert "Geïnd" in retries


def test_an_overview_without_hold_or_retries_shows_neither(browser: Browser, stub: ApiStub) -> None:
    stub.answer("overview", OVERVIEW)
    browser.sign_in("user-7")

    page = text(browser.get("/accounts/acc-1001"))

    assert 'id="hold"' not in page
    assert 'id="payment-retries"' not in page
