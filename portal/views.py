"""View models: the API's JSON arranged for the templates (banners, payment-method choices, labels)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

from portal.catalogue import Translator
from portal.paths import local_path

JsonObject = dict[str, Any]

# The sandbox gateway's documented test tokens (docs/settlement-api.md) and the outcome each one produces.
TEST_CARDS: tuple[tuple[str, str, str], ...] = (
    ("tok_visa", "Visa 4242", "card.succeeds"),
    ("tok_mastercard", "Mastercard 4444", "card.succeeds"),
    ("tok_decline", "Visa 0002", "reason.card_declined"),
    ("tok_insufficient_funds", "Visa 9995", "reason.insufficient_funds"),
    ("tok_expired_card", "Visa 0069", "reason.expired_card"),
)
_TEST_TOKENS = frozenset(token for token, _, _ in TEST_CARDS)
INVOICE_CHOICE = "invoice"
_METHOD_PREFIX = "pm:"
_TOKEN_PREFIX = "tok:"  # noqa: S105 - a form value prefix, not a secret
_URL = re.compile(r"https?://[^\s<>\"']+")


@dataclass(frozen=True)
class Banner:
    kind: str
    level: str
    text: str


@dataclass(frozen=True)
class MethodChoice:
    value: str
    label: str
    group: str
    failed: bool = False


def get(document: JsonObject, *names: str, default: Any = None) -> Any:
    """The first present field among camelCase and snake_case spellings."""
    for name in names:
        if name in document and document[name] is not None:
            return document[name]
    return default


def method_label(method: JsonObject | None, fallback: str = "") -> str:
    if not method:
        return fallback
    if method.get("kind") == "invoice":
        return "Invoice"
    brand = str(method.get("brand") or "card").title()
    last4 = method.get("last4") or "????"
    return f"{brand} •••• {last4}"


def methods_by_id(overview: JsonObject) -> dict[str, JsonObject]:
    return {str(m["id"]): m for m in get(overview, "paymentMethods", "payment_methods", default=[]) if "id" in m}


# The dates the overview gives per subscription (shared/domain/dunning_dates.py), in the order they come.
DATE_KINDS = ("nextRetry", "warning", "cancellation", "deletion")


def dates_ahead(subscription: JsonObject) -> list[tuple[str, str]]:
    """The subscription's dates that apply, as (kind, ISO 8601 UTC) pairs; the template writes them in the locale."""
    dates = subscription.get("dates") or {}
    return [(kind, str(dates[kind])) for kind in DATE_KINDS if isinstance(dates, dict) and dates.get(kind)]


def names_by_id(overview: JsonObject) -> dict[str, str]:
    return {str(s["id"]): str(s.get("name") or s["id"]) for s in overview.get("subscriptions", []) if "id" in s}


_ALERT_LEVELS = {
    "payment_failed": "warning",
    "reminder": "warning",
    "will_be_disabled": "danger",
    "disabled": "danger",
    "deletion_scheduled": "danger",
    "reenabled": "success",
    "notification_address_undeliverable": "danger",
}


def banners(overview: JsonObject, t: Translator) -> list[Banner]:
    """One banner per open alert, worded for the reader; the subscriptions and method named, not their ids."""
    names = names_by_id(overview)
    methods = methods_by_id(overview)
    found = []
    for alert in overview.get("alerts", []):
        kind = str(alert.get("kind", ""))
        subscription_ids = get(alert, "subscriptionIds", "subscription_ids", default=[])
        subscriptions = ", ".join(names.get(s, s) for s in subscription_ids) or t("alert.the_subscriptions")
        method_id = get(alert, "paymentMethodId", "payment_method_id")
        effective = get(alert, "effectiveDate", "effective_date")
        values = {
            "subscriptions": subscriptions,
            "method": method_label(methods.get(str(method_id)), str(method_id or "")),
            "date": t.date(effective) if effective else t("alert.soon"),
            "kind": kind,
            "address": str(get(alert, "notificationEmail", "notification_email", default="")),
            "reason": undeliverable_reason(alert, t),
        }
        key = f"alert.{kind}" if t.has(f"alert.{kind}") else "alert.other"
        if kind == "payment_failed" and not effective:
            key = "alert.payment_failed_undated"
        found.append(Banner(kind=kind, level=_ALERT_LEVELS.get(kind, "info"), text=t(key, **values)))
    return found


def undeliverable_reason(alert: JsonObject, t: Translator) -> str:
    """Why emails to the address do not arrive, in the reader's words, with the receiving side's own in brackets."""
    reason = t.label("undeliverable", str(get(alert, "reason", default="other")))
    if reason == get(alert, "reason"):
        reason = t("undeliverable.other")
    detail = get(alert, "statusDetail", "status_detail")
    return f"{reason} ({detail})" if detail else reason


def method_choices(overview: JsonObject, t: Translator) -> list[MethodChoice]:
    """Existing cards (a failed one marked), the sandbox test cards, and invoice."""
    choices = [
        MethodChoice(
            value=f"{_METHOD_PREFIX}{method['id']}",
            label=method_label(method) + (f" {t('settle.failed_marker')}" if method.get("status") == "failed" else ""),
            group="existing",
            failed=method.get("status") == "failed",
        )
        for method in methods_by_id(overview).values()
        if method.get("kind") == "card"
    ]
    choices += [
        MethodChoice(value=f"{_TOKEN_PREFIX}{token}", label=f"{card} ({t(outcome)})", group="test")
        for token, card, outcome in TEST_CARDS
    ]
    choices.append(MethodChoice(value=INVOICE_CHOICE, label=t("settle.invoice_option"), group="invoice"))
    return choices


def default_choice(choices: list[MethodChoice]) -> str:
    """A working existing card when there is one, else the first test card."""
    existing = [c for c in choices if c.group == "existing" and not c.failed]
    return (existing or [c for c in choices if c.group == "test"])[0].value


def payment_method_body(choice: str) -> JsonObject | None:
    """The API's `paymentMethod` for a form choice, or None when the choice is not one we offer."""
    if choice == INVOICE_CHOICE:
        return {"kind": "invoice"}
    if choice.startswith(_METHOD_PREFIX) and len(choice) > len(_METHOD_PREFIX):
        return {"id": choice.removeprefix(_METHOD_PREFIX)}
    token = choice.removeprefix(_TOKEN_PREFIX)
    if choice.startswith(_TOKEN_PREFIX) and token in _TEST_TOKENS:
        return {"token": token}
    return None


def quoted_method_id(choice: str, overview: JsonObject) -> str | None:
    """The existing method whose own debt the quote must add: the chosen card, or the account's invoice method."""
    if choice.startswith(_METHOD_PREFIX):
        return choice.removeprefix(_METHOD_PREFIX)
    if choice == INVOICE_CHOICE:
        invoices = sorted(m for m, body in methods_by_id(overview).items() if body.get("kind") == "invoice")
        return invoices[0] if invoices else None
    return None


def link_own_urls(text: str, own_origins: tuple[str, ...]) -> Markup:
    """Escape `text`, turning URLs into the portal itself into relative links (emails carry absolute ones)."""
    parts: list[str] = []
    position = 0
    for match in _URL.finditer(text):
        parts.append(str(escape(text[position : match.start()])))
        url = match.group(0).rstrip(".,;:)")
        origin = next((o for o in own_origins if url == o or url.startswith(f"{o}/")), None)
        # `{origin}//evil.example/x` names another site once the origin is cut off: it stays text.
        path = local_path(url[len(origin) :] or "/") if origin is not None else None
        if path is None:
            parts.append(str(escape(url)))
        else:
            parts.append(f'<a href="{escape(path)}">{escape(url)}</a>')
        position = match.start() + len(url)
    parts.append(str(escape(text[position:])))
    return Markup("".join(parts))  # noqa: S704 - every piece above is escaped
