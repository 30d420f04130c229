"""The portal's words in English and Dutch, and locale-aware money and dates; the account's locale picks one."""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import UTC, date, datetime

LANGUAGES = ("en", "nl")

MESSAGES: dict[str, dict[str, str]] = {
    "app.name": {"en": "Billing portal", "nl": "Facturatieportaal"},
    "nav.skip": {"en": "Skip to content", "nl": "Naar de inhoud"},
    "nav.accounts": {"en": "Accounts", "nl": "Accounts"},
    "nav.overview": {"en": "Overview", "nl": "Overzicht"},
    "nav.notifications": {"en": "Billing email", "nl": "Factuur-e-mail"},
    "nav.outbox": {"en": "Sent emails", "nl": "Verzonden e-mails"},
    "nav.signout": {"en": "Sign out", "nl": "Afmelden"},
    "nav.signed_in_as": {"en": "Signed in as {principal}", "nl": "Aangemeld als {principal}"},
    "signin.title": {"en": "Sign in", "nl": "Aanmelden"},
    "signin.intro": {
        "en": "A local demo: choose who you act as. The portal signs every call to the billing API for that person.",
        "nl": "Een lokale demo: kies namens wie u handelt. Het portaal ondertekent elke aanroep van de factuur-API "
        "voor die persoon.",
    },
    "signin.principal": {"en": "Act as", "nl": "Handelen als"},
    "signin.admin_of": {"en": "{principal}, admin of {account}", "nl": "{principal}, beheerder van {account}"},
    "signin.submit": {"en": "Sign in", "nl": "Aanmelden"},
    "signin.choose": {"en": "Choose who to act as.", "nl": "Kies namens wie u handelt."},
    "accounts.title": {"en": "Your billing accounts", "nl": "Uw factuuraccounts"},
    "accounts.none": {
        "en": "You are not the admin of any demo account.",
        "nl": "U bent van geen enkel demo-account de beheerder.",
    },
    "accounts.open": {"en": "Open an account by id", "nl": "Een account openen op id"},
    "accounts.account_id": {"en": "Account id", "nl": "Account-id"},
    "accounts.go": {"en": "Open", "nl": "Openen"},
    "overview.title": {"en": "Subscriptions of {account}", "nl": "Abonnementen van {account}"},
    "overview.subscription": {"en": "Subscription", "nl": "Abonnement"},
    "overview.service": {"en": "Service", "nl": "Dienst"},
    "overview.state": {"en": "State", "nl": "Status"},
    "overview.payment_method": {"en": "Payment method", "nl": "Betaalmethode"},
    "overview.outstanding": {"en": "Outstanding", "nl": "Openstaand"},
    "overview.action": {"en": "Action", "nl": "Actie"},
    "overview.settle": {"en": "Settle balance", "nl": "Saldo betalen"},
    "overview.settle_for": {"en": "Settle balance for {name}", "nl": "Saldo betalen voor {name}"},
    "overview.no_alerts": {"en": "No open alerts.", "nl": "Geen openstaande meldingen."},
    "overview.alerts": {"en": "Alerts", "nl": "Meldingen"},
    "state.Enabled": {"en": "Active", "nl": "Actief"},
    "state.Warned": {"en": "Warned", "nl": "Gewaarschuwd"},
    "state.PastDue": {"en": "Past due", "nl": "Achterstallig"},
    "state.Disabled": {"en": "Disabled", "nl": "Uitgeschakeld"},
    "state.Deleted": {"en": "Deleted", "nl": "Verwijderd"},
    "alert.payment_failed": {
        "en": "The payment with {method} failed. {subscriptions} will be disabled on {date} unless the balance is "
        "settled.",
        "nl": "De betaling met {method} is mislukt. {subscriptions} wordt uitgeschakeld op {date} als het saldo "
        "niet wordt betaald.",
    },
    "alert.payment_failed_undated": {
        "en": "The payment with {method} failed. {subscriptions} will be disabled unless the balance is settled.",
        "nl": "De betaling met {method} is mislukt. {subscriptions} wordt uitgeschakeld als het saldo niet wordt "
        "betaald.",
    },
    "alert.reminder": {
        "en": "Reminder: the balance on {method} is still open. {subscriptions} will be disabled on {date}.",
        "nl": "Herinnering: het saldo op {method} staat nog open. {subscriptions} wordt uitgeschakeld op {date}.",
    },
    "alert.will_be_disabled": {
        "en": "{subscriptions} will be disabled on {date} because the balance is not paid.",
        "nl": "{subscriptions} wordt uitgeschakeld op {date} omdat het saldo niet is betaald.",
    },
    "alert.disabled": {
        "en": "{subscriptions} disabled because payment wasn't received. Settle the balance to enable it again.",
        "nl": "{subscriptions} uitgeschakeld omdat de betaling niet is ontvangen. Betaal het saldo om weer in te "
        "schakelen.",
    },
    "alert.deletion_scheduled": {
        "en": "The data of {subscriptions} will be deleted on {date} unless the balance is settled.",
        "nl": "De gegevens van {subscriptions} worden verwijderd op {date} als het saldo niet wordt betaald.",
    },
    "alert.reenabled": {
        "en": "{subscriptions} enabled again. Thank you for your payment.",
        "nl": "{subscriptions} weer ingeschakeld. Bedankt voor uw betaling.",
    },
    "alert.other": {"en": "Billing notice: {kind}.", "nl": "Factuurmelding: {kind}."},
    "alert.soon": {"en": "soon", "nl": "binnenkort"},
    "alert.the_subscriptions": {"en": "The subscriptions", "nl": "De abonnementen"},
    "settle.title": {"en": "Settle balance", "nl": "Saldo betalen"},
    "settle.intro": {
        "en": "The balance covers every outstanding charge on {method}, for all subscriptions and services. It is "
        "paid in full, at once.",
        "nl": "Het saldo omvat alle openstaande bedragen op {method}, voor alle abonnementen en diensten. Het "
        "wordt in één keer volledig betaald.",
    },
    "settle.lines": {"en": "What you pay", "nl": "Wat u betaalt"},
    "settle.invoice": {"en": "Invoice", "nl": "Factuur"},
    "settle.amount": {"en": "Amount", "nl": "Bedrag"},
    "settle.total": {"en": "Total", "nl": "Totaal"},
    "settle.method": {"en": "Pay with", "nl": "Betalen met"},
    "settle.existing": {"en": "Your payment methods", "nl": "Uw betaalmethoden"},
    "settle.failed_marker": {"en": "(payment failed)", "nl": "(betaling mislukt)"},
    "settle.test_cards": {"en": "New card (sandbox test cards)", "nl": "Nieuwe kaart (testkaarten van de sandbox)"},
    "settle.other": {"en": "Or pay by invoice", "nl": "Of betaal op factuur"},
    "card.succeeds": {"en": "payment succeeds", "nl": "betaling slaagt"},
    "settle.invoice_option": {"en": "Invoice (bank transfer)", "nl": "Factuur (bankoverschrijving)"},
    "settle.invoice_hint": {
        "en": "You receive the bank details and a payment reference. Your subscriptions come back once the transfer "
        "has arrived.",
        "nl": "U ontvangt de bankgegevens en een betalingskenmerk. Uw abonnementen komen terug zodra de "
        "overschrijving is ontvangen.",
    },
    "settle.review": {"en": "Show the total for this method", "nl": "Toon het totaal voor deze methode"},
    "settle.pay": {"en": "Pay {total}", "nl": "Betaal {total}"},
    "settle.becomes_active": {
        "en": "The method you pay with becomes the payment method of every subscription that used {method}.",
        "nl": "De methode waarmee u betaalt wordt de betaalmethode van elk abonnement dat {method} gebruikte.",
    },
    "settle.quote_changed": {
        "en": "The balance changed since this page was shown. The new total is {total}; check it and pay again.",
        "nl": "Het saldo is gewijzigd sinds deze pagina werd getoond. Het nieuwe totaal is {total}; controleer het "
        "en betaal opnieuw.",
    },
    "settle.nothing": {"en": "There is nothing to settle.", "nl": "Er valt niets te betalen."},
    "settle.choose_method": {"en": "Choose a payment method.", "nl": "Kies een betaalmethode."},
    "settle.back": {"en": "Back to the overview", "nl": "Terug naar het overzicht"},
    "result.title": {"en": "Payment result", "nl": "Resultaat van de betaling"},
    "result.succeeded": {"en": "Payment of {amount} received.", "nl": "Betaling van {amount} ontvangen."},
    "result.declined": {
        "en": "The payment was declined: {reason}. Nothing was charged and your balance is still open.",
        "nl": "De betaling is geweigerd: {reason}. Er is niets afgeschreven en uw saldo staat nog open.",
    },
    "result.pending": {
        "en": "Your payment of {amount} is being processed.",
        "nl": "Uw betaling van {amount} wordt verwerkt.",
    },
    "result.pending_invoice": {
        "en": "Transfer {amount} to the account below and quote the payment reference. Your subscriptions stay past "
        "due until the transfer arrives.",
        "nl": "Maak {amount} over naar de rekening hieronder en vermeld het betalingskenmerk. Uw abonnementen blijven "
        "achterstallig tot de overschrijving binnen is.",
    },
    "result.reenabled": {"en": "Enabled again", "nl": "Weer ingeschakeld"},
    "result.none_reenabled": {"en": "No subscription changed state.", "nl": "Geen abonnement is van status veranderd."},
    "result.active_method": {"en": "Active payment method: {method}", "nl": "Actieve betaalmethode: {method}"},
    "result.try_again": {"en": "Try another payment method", "nl": "Probeer een andere betaalmethode"},
    "result.settlement_id": {"en": "Settlement", "nl": "Betaling"},
    "result.expired": {
        "en": "This result is no longer available. The overview shows the current state.",
        "nl": "Dit resultaat is niet meer beschikbaar. Het overzicht toont de huidige stand.",
    },
    "remittance.title": {"en": "Bank transfer details", "nl": "Gegevens voor de overschrijving"},
    "remittance.beneficiary": {"en": "Beneficiary", "nl": "Begunstigde"},
    "remittance.iban": {"en": "IBAN", "nl": "IBAN"},
    "remittance.bic": {"en": "BIC", "nl": "BIC"},
    "remittance.accountNumber": {"en": "Account number", "nl": "Rekeningnummer"},
    "remittance.reference": {"en": "Payment reference", "nl": "Betalingskenmerk"},
    "remittance.amount": {"en": "Amount", "nl": "Bedrag"},
    "remittance.dueDate": {"en": "Pay before", "nl": "Betalen voor"},
    "reason.insufficient_funds": {"en": "insufficient funds", "nl": "onvoldoende saldo"},
    "reason.card_declined": {"en": "the card was declined", "nl": "de kaart is geweigerd"},
    "reason.expired_card": {"en": "the card has expired", "nl": "de kaart is verlopen"},
    "reason.do_not_honor": {"en": "the bank refused the payment", "nl": "de bank heeft de betaling geweigerd"},
    "reason.processing_error": {"en": "a processing error at the bank", "nl": "een verwerkingsfout bij de bank"},
    "reason.invalid_token": {"en": "the card is not known", "nl": "de kaart is onbekend"},
    "reason.gateway_timeout": {
        "en": "the bank did not answer in time; we check again shortly",
        "nl": "de bank antwoordde niet op tijd; we controleren het zo opnieuw",
    },
    "notifications.title": {"en": "Billing email", "nl": "Factuur-e-mail"},
    "notifications.intro": {
        "en": "Billing notices for this account go to this address.",
        "nl": "Factuurberichten voor dit account gaan naar dit adres.",
    },
    "notifications.current": {"en": "Current address", "nl": "Huidig adres"},
    "notifications.new": {"en": "New address", "nl": "Nieuw adres"},
    "notifications.save": {"en": "Save address", "nl": "Adres opslaan"},
    "notifications.saved": {"en": "The address is saved.", "nl": "Het adres is opgeslagen."},
    "notifications.recent": {"en": "Recent billing emails", "nl": "Recente factuur-e-mails"},
    "notifications.none": {"en": "No billing email was sent yet.", "nl": "Er is nog geen factuur-e-mail verzonden."},
    "notifications.template": {"en": "Email", "nl": "E-mail"},
    "notifications.status": {"en": "Status", "nl": "Status"},
    "notifications.when": {"en": "Sent", "nl": "Verzonden"},
    "notifications.to": {"en": "To", "nl": "Aan"},
    "notifications.error": {"en": "Last error", "nl": "Laatste fout"},
    "template.payment_failed": {"en": "Payment failed", "nl": "Betaling mislukt"},
    "template.settlement_receipt": {"en": "Payment received", "nl": "Betaling ontvangen"},
    "template.retention_reminder": {"en": "Reminder", "nl": "Herinnering"},
    "template.retention_final_notice": {"en": "Final notice", "nl": "Laatste aanmaning"},
    "template.retention_disabled": {"en": "Service disabled", "nl": "Dienst uitgeschakeld"},
    "template.retention_deletion_warning": {
        "en": "Data deletion warning",
        "nl": "Waarschuwing: gegevens worden verwijderd",
    },
    "template.retention_deleted": {"en": "Data deleted", "nl": "Gegevens verwijderd"},
    "template.retention_reenabled": {"en": "Service enabled again", "nl": "Dienst weer ingeschakeld"},
    "notification_status.pending": {"en": "Waiting to be sent", "nl": "Wacht op verzending"},
    "notification_status.sent": {"en": "Sent", "nl": "Verzonden"},
    "notification_status.failed": {"en": "Could not be delivered", "nl": "Kon niet worden bezorgd"},
    "outbox.title": {"en": "Sent emails (local outbox)", "nl": "Verzonden e-mails (lokale outbox)"},
    "outbox.intro": {
        "en": "Emails the app wrote to {folder} instead of sending them.",
        "nl": "E-mails die de app in {folder} schreef in plaats van ze te versturen.",
    },
    "outbox.empty": {"en": "No emails yet.", "nl": "Nog geen e-mails."},
    "outbox.missing": {
        "en": "The folder does not exist yet: no email was written.",
        "nl": "De map bestaat nog niet: er is nog geen e-mail geschreven.",
    },
    "outbox.subject": {"en": "Subject", "nl": "Onderwerp"},
    "outbox.to": {"en": "To", "nl": "Aan"},
    "outbox.date": {"en": "Date", "nl": "Datum"},
    "outbox.from": {"en": "From", "nl": "Van"},
    "outbox.text": {"en": "Text version", "nl": "Tekstversie"},
    "outbox.html": {"en": "HTML version", "nl": "HTML-versie"},
    "outbox.html_frame": {
        "en": "HTML version of the email (scripts and remote content blocked)",
        "nl": "HTML-versie van de e-mail (scripts en externe inhoud geblokkeerd)",
    },
    "outbox.back": {"en": "All emails", "nl": "Alle e-mails"},
    "error.title": {"en": "Something went wrong", "nl": "Er ging iets mis"},
    "error.field": {"en": "Field {field}: {message}", "nl": "Veld {field}: {message}"},
    "error.unreachable": {
        "en": "The billing API is not reachable ({detail}). Is the local host running?",
        "nl": "De factuur-API is niet bereikbaar ({detail}). Draait de lokale host?",
    },
    "error.forbidden": {
        "en": "You are not the admin of this account, so you cannot act on it.",
        "nl": "U bent niet de beheerder van dit account en kunt er dus niets mee doen.",
    },
    "error.not_found": {"en": "Not found: {detail}", "nl": "Niet gevonden: {detail}"},
    "error.page_not_found": {"en": "This page does not exist.", "nl": "Deze pagina bestaat niet."},
    "error.expired_form": {
        "en": "This form expired. Reload the page and try again.",
        "nl": "Dit formulier is verlopen. Laad de pagina opnieuw en probeer het nog eens.",
    },
    "month.1": {"en": "January", "nl": "januari"},
    "month.2": {"en": "February", "nl": "februari"},
    "month.3": {"en": "March", "nl": "maart"},
    "month.4": {"en": "April", "nl": "april"},
    "month.5": {"en": "May", "nl": "mei"},
    "month.6": {"en": "June", "nl": "juni"},
    "month.7": {"en": "July", "nl": "juli"},
    "month.8": {"en": "August", "nl": "augustus"},
    "month.9": {"en": "September", "nl": "september"},
    "month.10": {"en": "October", "nl": "oktober"},
    "month.11": {"en": "November", "nl": "november"},
    "month.12": {"en": "December", "nl": "december"},
}

CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥"}


def language_of(locale: str | None) -> str:
    """`nl-NL`, `nl-BE`, `nl` -> nl; anything else -> en."""
    primary = (locale or "").split("-")[0].split("_")[0].lower()
    return primary if primary in LANGUAGES else "en"


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@dataclass(frozen=True)
class Translator:
    language: str

    def __call__(self, key: str, **values: object) -> str:
        """The message in this language; an unknown key shows as itself so a gap is visible, not fatal."""
        entry = MESSAGES.get(key)
        if entry is None:
            return key
        return entry.get(self.language, entry["en"]).format(**values)

    def has(self, key: str) -> bool:
        return key in MESSAGES

    def money(self, amount: str, currency: str) -> str:
        """A decimal string from the API in the reader's notation: `€62.45` or `€ 62,45`."""
        sign = "-" if amount.startswith("-") else ""
        whole, _, fraction = amount.lstrip("-").partition(".")
        separator, decimal_mark = (".", ",") if self.language == "nl" else (",", ".")
        grouped = f"{int(whole or '0'):,}".replace(",", separator)
        number = f"{grouped}{decimal_mark}{fraction}" if fraction else grouped
        symbol = CURRENCY_SYMBOLS.get(currency)
        if symbol is None:
            return f"{sign}{currency} {number}"
        return f"{sign}{symbol} {number}" if self.language == "nl" else f"{sign}{symbol}{number}"

    def date(self, value: str | None) -> str:
        """An ISO 8601 date (or date-time) as `7 December 2025` / `7 december 2025`; other text unchanged."""
        if not value:
            return ""
        try:
            day = date.fromisoformat(value[:10])
        except ValueError:
            return value
        return f"{day.day} {self(f'month.{day.month}')} {day.year}"

    def moment(self, value: str | None) -> str:
        """An ISO 8601 date-time as `7 December 2025, 09:30 UTC`; a bare date as `date` does."""
        if not value:
            return ""
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        if len(value) <= 10:
            return self.date(value)
        at = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
        return f"{self.date(at.date().isoformat())}, {at:%H:%M} UTC"

    def label(self, prefix: str, value: str) -> str:
        """The catalogue's words for a code (`template.payment_failed`), or the code itself when there are none."""
        return self(f"{prefix}.{value}") if self.has(f"{prefix}.{value}") else value


def translator(locale: str | None) -> Translator:
    return Translator(language_of(locale))
