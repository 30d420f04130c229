"""The settle-balance portal in a real browser: headless Chromium (Debian's package) driven by Playwright.

The whole stack runs as it does locally: Azurite, the function app in the local host (`python -m devhost`), and
the portal (`python -m portal`). Payment events go through the real `payment-failed` queue; the portal signs its
calls like a real portal. Screenshots of each step land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from cli.demo import DEMO_ACCOUNTS, PAYMENT_EVENTS_QUEUE, demo_failure_events
from devhost.azurite import REPO_ROOT, AzuriteProcess, free_port
from shared.domain.lifecycle import SubscriptionState
from shared.domain.outbox import NotificationStatus
from shared.domain.partition import AccountPartition
from shared.domain.settlement import Settlement
from shared.storage.account_store import AccountStore
from shared.storage.tables import TableStorage
from tests.support.local_host import app_environment, outbox_of, start_app

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SUBMIT_PAY_FORM_TWICE = """
async () => {
  const form = document.querySelector("form.pay");
  const body = new URLSearchParams(new FormData(form));
  body.set("step", "pay");
  const replies = await Promise.all([1, 2].map(() => fetch(form.action, { method: "POST", body })));
  return replies.map((reply) => reply.url);
}
"""


def missing_browser_tools() -> list[str]:
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install -y chromium)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (pip install playwright==1.65.2; never `playwright install`)")
    return missing


MISSING_TOOLS = missing_browser_tools()
MISSING_REASON = "browser tests need " + " and ".join(MISSING_TOOLS)
# Without the tools a developer's run skips these tests; CI must have them, so there they fail (see `browser`).
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.azurite,
    pytest.mark.skipif(bool(MISSING_TOOLS) and not os.environ.get("CI"), reason=MISSING_REASON),
]
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
FUNCTION_KEY = "portal-e2e-key"
WAIT_SECONDS = 45.0


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@dataclass
class Stack:
    """The running host and portal, and direct access to their storage for seeding and checks."""

    connection_string: str
    portal_url: str
    api_url: str
    outbox_dir: Path
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]]

    @property
    def accounts(self) -> AccountStore:
        storage = TableStorage(self.connection_string)
        storage.ensure_tables()
        return AccountStore(storage)

    def load(self, account_id: str) -> AccountPartition:
        return self.accounts.load(account_id)

    def send_event(self, event: dict[str, Any]) -> None:
        queue = QueueClient.from_connection_string(
            self.connection_string, PAYMENT_EVENTS_QUEUE, message_encode_policy=TextBase64EncodePolicy()
        )
        with contextlib.suppress(ResourceExistsError):
            queue.create_queue()
        queue.send_message(json.dumps(event))

    def wait_for_account(self, account_id: str, check: Callable[[AccountPartition], bool], what: str) -> None:
        def done() -> bool:
            self.ensure_running()
            return check(self.load(account_id))

        wait_for(done, f"{what} on {account_id}")

    def ensure_running(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                log = (self.logs / f"{name}.log").read_text(encoding="utf-8")
                raise AssertionError(f"the {name} exited with {process.returncode}:\n{log[-4000:]}")


def start_process(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as log_file:
        return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def stack(azurite: AzuriteProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Host and portal as separate processes, sharing the session's Azurite, a fresh outbox and a fresh secret."""
    logs = tmp_path_factory.mktemp("portal-e2e")
    portal_port = free_port()
    portal_url = f"http://127.0.0.1:{portal_port}"
    settings = {
        "PORTAL_BASE_URL": portal_url,
        "LOCAL_FUNCTION_KEY": FUNCTION_KEY,
        "PORTAL_WEBHOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "LIFECYCLE_QUEUE": f"lifecycle-portal-{secrets.token_hex(4)}",
    }
    host = start_app(logs, azurite.connection_string, **settings)
    api_url = f"{host.base_url}/api"
    env = app_environment(azurite.connection_string, outbox_of(host), **settings)
    processes = {"host": host.process}
    try:
        portal = start_process(
            [sys.executable, "-m", "portal", "--port", str(portal_port), "--api", api_url], env, logs / "portal.log"
        )
        processes["portal"] = portal
        wait_for(lambda: portal.poll() is None and answers(f"{portal_url}/signin"), "the portal to answer", 30)
        yield Stack(azurite.connection_string, portal_url, api_url, outbox_of(host), logs, processes)
    finally:
        stop_process(processes.get("portal"))
        host.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if MISSING_TOOLS:
        pytest.fail(f"{MISSING_REASON}; CI must have them (scripts/setup.sh installs them)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    context = browser.new_context(base_url=stack.portal_url, locale="en-US", viewport={"width": 1200, "height": 900})
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


def shoot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def demo_copy(index: int, stack: Stack) -> tuple[str, str]:
    """Seed a fresh copy of demo account `index` (cli/demo.py) under a new id and email; returns (id, email)."""
    account, methods, subscriptions = DEMO_ACCOUNTS[index]
    suffix = secrets.token_hex(4)
    account_id = f"{account.id}-{suffix}"
    local, _, domain = account.notification_email.partition("@")
    email = f"{local}+{suffix}@{domain}"
    partition = stack.load(account_id)
    partition.set_account(account.model_copy(update={"id": account_id, "notification_email": email}))
    partition.put(*methods, *subscriptions)
    stack.accounts.commit(partition)
    return account_id, email


def failure_event(index: int, account_id: str, email: str) -> dict[str, Any]:
    """The demo account's payment.failed event, renamed to the copy (its id too, so it is a new event)."""
    template = demo_failure_events(datetime.now(UTC))[index]
    original = DEMO_ACCOUNTS[index][0]
    text = json.dumps(template).replace(original.notification_email, email).replace(original.id, account_id)
    return dict(json.loads(text))


def past_due(stack: Stack, index: int) -> tuple[str, str]:
    """A demo copy whose payment failed through the real queue, once the app has applied it."""
    account_id, email = demo_copy(index, stack)
    stack.send_event(failure_event(index, account_id, email))
    stack.wait_for_account(
        account_id,
        lambda p: (
            any(a.is_open for a in p.alerts)
            and any(s.state is SubscriptionState.PAST_DUE for s in p.subscriptions)
            and bool(p.notifications)
            and all(n.status is NotificationStatus.SENT for n in p.notifications)
        ),
        "the payment.failed event to be applied and its email sent",
    )
    return account_id, email


def sign_in(page: Page, principal: str) -> None:
    page.get_by_label(re.compile(rf"^{principal},")).check()
    page.get_by_role("button", name="Sign in").click()


def states(stack: Stack, account_id: str) -> dict[str, SubscriptionState]:
    return {s.id: s.state for s in stack.load(account_id).subscriptions}


def test_a_shared_card_account_settles_everything_from_the_email_link(page: Page, stack: Stack) -> None:
    from playwright.sync_api import expect

    account_id, email = past_due(stack, 0)

    # The payment-failed email is in the outbox; its settle link leads to the portal.
    page.goto("/outbox")
    page.get_by_role("row").filter(has_text=email).get_by_role("link").click()
    expect(page.frame_locator("iframe.email-html").locator("body")).to_contain_text("Production")
    shoot(page, "shared-card-01-email")
    settle_link = page.locator("#email-text a", has_text=f"/accounts/{account_id}/settle").first
    expect(settle_link).to_be_visible()
    settle_link.click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    sign_in(page, "user-7")

    # The settle pane, in the account's language (nl-NL): every charge on the failed Visa, across services.
    expect(page.locator("html")).to_have_attribute("lang", "nl")
    expect(page.get_by_role("heading", name="Saldo betalen")).to_be_visible()
    lines = page.locator("#quote-lines tbody tr")
    expect(lines).to_have_count(2)
    expect(page.locator("#quote-lines")).to_contain_text("inv-1")
    expect(page.locator("#quote-lines")).to_contain_text("inv-2")
    expect(page.locator("#quote-total")).to_have_text("€ 62,45")
    shoot(page, "shared-card-02-settle-pane")

    # The overview first: the alert says what will happen.
    page.get_by_role("link", name="Overzicht", exact=True).click()
    banner = page.locator("[data-alert-kind=payment_failed]")
    expect(banner).to_contain_text("wordt uitgeschakeld op")
    expect(banner).to_contain_text("Production, Office")
    expect(page.locator("#subscription-sub-a")).to_contain_text("Achterstallig")
    expect(page.locator("#subscription-sub-b")).to_contain_text("Actief")
    shoot(page, "shared-card-03-overview-alert")

    page.get_by_role("link", name="Saldo betalen voor Production").click()
    page.get_by_label("Mastercard •••• 5555").check()
    # The same rendered form sent twice at once (a double click on a slow line): one Idempotency-Key per render,
    # so it pays once and both answers lead to the same result. (Chromium drops a double click's second submit
    # by itself, so the page sends both here.)
    result_urls = page.evaluate(SUBMIT_PAY_FORM_TWICE)
    assert len(set(result_urls)) == 1
    page.goto(result_urls[0])

    result = page.locator("#result")
    expect(result).to_have_attribute("data-status", "succeeded")
    expect(result).to_contain_text("Betaling van € 62,45 ontvangen.")
    expect(page.locator("#reenabled")).to_contain_text("Production")
    expect(page.locator("#reenabled")).to_contain_text("Office")
    expect(page.locator("#active-method")).to_have_text("Actieve betaalmethode: Mastercard •••• 5555")
    shoot(page, "shared-card-04-result")

    partition = stack.load(account_id)
    assert len(partition.all(Settlement)) == 1
    assert {s.state for s in partition.subscriptions} == {SubscriptionState.ENABLED}
    assert {s.payment_method_id for s in partition.subscriptions} == {"pm-mc-5555"}
    assert not any(a.is_open for a in partition.alerts)

    page.get_by_role("link", name="Terug naar het overzicht").click()
    expect(page.locator("#no-alerts")).to_be_visible()
    for subscription_id in ("sub-a", "sub-b", "sub-c"):
        expect(page.locator(f"#subscription-{subscription_id}")).to_contain_text("Actief")
        expect(page.locator(f"#subscription-{subscription_id} .method")).to_have_text("Mastercard •••• 5555")
    shoot(page, "shared-card-05-overview-enabled")


def test_a_declined_card_explains_why_and_the_alert_stays(page: Page, stack: Stack) -> None:
    from playwright.sync_api import expect

    account_id, _ = past_due(stack, 1)

    page.goto(f"/accounts/{account_id}/settle?subscription=sub-x")
    sign_in(page, "user-9")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#quote-total")).to_have_text("$310.00")
    page.get_by_label("Visa 9995 (insufficient funds)").check()
    page.get_by_role("button", name="Pay $310.00").click()

    result = page.locator("#result")
    expect(result).to_have_attribute("data-status", "declined")
    expect(result).to_contain_text("The payment was declined: insufficient funds.")
    expect(result).to_contain_text("Nothing was charged")
    shoot(page, "decline-01-result")

    page.get_by_role("link", name="Back to the overview").click()
    expect(page.locator("[data-alert-kind=payment_failed]")).to_contain_text("will be disabled")
    expect(page.locator("#subscription-sub-x")).to_contain_text("Past due")
    shoot(page, "decline-02-overview-alert-stays")
    assert states(stack, account_id) == {"sub-x": SubscriptionState.PAST_DUE}

    # "Why don't I get billing email?": the address in use and what became of the last emails.
    page.get_by_role("link", name="Billing email").click()
    expect(page.locator("#current-address")).to_contain_text("ap+")
    expect(page.locator("#notifications")).to_contain_text("Sent")
    page.get_by_label("New address").fill("payables@fabrikam.example")
    page.get_by_role("button", name="Save address").click()
    expect(page.locator("#saved")).to_be_visible()
    expect(page.locator("#current-address")).to_have_text("payables@fabrikam.example")
    shoot(page, "decline-03-notification-address")


def test_an_invoice_customer_gets_remittance_details_and_comes_back_when_the_money_arrives(
    page: Page, stack: Stack
) -> None:
    from playwright.sync_api import expect

    account_id, _ = past_due(stack, 1)

    page.goto(f"/accounts/{account_id}")
    sign_in(page, "user-9")
    page.get_by_role("link", name="Settle balance for Analytics").click()
    page.get_by_label("Invoice (bank transfer)").check()
    page.get_by_role("button", name="Pay $310.00").click()

    remittance = page.locator("#remittance")
    expect(page.locator("#result")).to_have_attribute("data-status", "pending")
    expect(remittance.locator("[data-field=beneficiary]")).to_have_text("Pastdue Demo B.V.")
    expect(remittance.locator("[data-field=iban]")).to_have_text("NL91ABNA0417164300")
    expect(remittance.locator("[data-field=bic]")).to_have_text("ABNANL2A")
    expect(remittance.locator("[data-field=amount]")).to_have_text("$310.00")
    reference = remittance.locator("[data-field=reference]").inner_text().strip()
    assert reference
    shoot(page, "invoice-01-remittance")

    page.get_by_role("link", name="Back to the overview").click()
    expect(page.locator("#subscription-sub-x")).to_contain_text("Past due")

    stack.send_event(
        {
            "specversion": "1.0",
            "id": f"wire-{account_id}",
            "type": "payment.received",
            "source": "/bank/e2e",
            "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "data": {"accountId": account_id, "reference": reference, "amount": "310.00", "currency": "USD"},
        }
    )
    stack.wait_for_account(
        account_id,
        lambda p: p.subscriptions[0].state is SubscriptionState.ENABLED,
        "the payment.received event to re-enable the subscription",
    )

    page.reload()
    expect(page.locator("#subscription-sub-x")).to_contain_text("Active")
    expect(page.locator("#subscription-sub-x .method")).to_have_text("Invoice")
    expect(page.locator("#no-alerts")).to_be_visible()
    shoot(page, "invoice-02-overview-enabled")
