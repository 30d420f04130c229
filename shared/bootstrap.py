"""Wire the real adapters together from Settings, once per worker process."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.adapters.lifecycle_queue import QueueLifecyclePublisher
from shared.domain.clock import Clock, SystemClock
from shared.email import AcsEmailSender, EmailRenderer, EmailSender, OutboxEmailSender
from shared.payments import PaymentGateway, SandboxGateway
from shared.services.outbox import Outbox
from shared.settings import Settings
from shared.storage.account_store import AccountStore
from shared.storage.due_index import DueIndex
from shared.storage.tables import TableStorage


@dataclass(frozen=True)
class Dependencies:
    settings: Settings
    clock: Clock
    storage: TableStorage
    accounts: AccountStore
    due: DueIndex
    outbox: Outbox
    gateway: PaymentGateway


def email_sender(settings: Settings, clock: Clock) -> EmailSender:
    if settings.acs_connection_string is not None:
        return AcsEmailSender(settings.acs_connection_string.get_secret_value(), settings.acs_sender_address)
    return OutboxEmailSender(settings.outbox_dir, settings.acs_sender_address, clock=clock.now)


def build(
    settings: Settings,
    *,
    clock: Clock | None = None,
    request_hook: Callable[[Any], None] | None = None,
    email: EmailSender | None = None,
    gateway: PaymentGateway | None = None,
) -> Dependencies:
    """Real adapters for `settings`; tests and benchmarks pass their own clock, request counter or sender."""
    clock = clock or SystemClock()
    connection_string = settings.storage_connection_string.get_secret_value()
    storage = TableStorage(connection_string, request_hook=request_hook)
    storage.ensure_tables()
    accounts = AccountStore(storage)
    due = DueIndex(storage)
    hook_options = {"raw_request_hook": request_hook} if request_hook else {}
    outbox = Outbox(
        store=accounts,
        due=due,
        email=email or email_sender(settings, clock),
        renderer=EmailRenderer(),
        events=QueueLifecyclePublisher(connection_string, settings.lifecycle_queue, **hook_options),
        clock=clock,
    )
    return Dependencies(
        settings=settings,
        clock=clock,
        storage=storage,
        accounts=accounts,
        due=due,
        outbox=outbox,
        gateway=gateway or SandboxGateway(storage, clock=clock),
    )


@functools.cache
def dependencies() -> Dependencies:
    """The process-wide dependencies, built on first use (Azure Functions reuses the worker between calls)."""
    return build(Settings.load())
