"""What the portal reads before paying: the overview, the quote, and the billing address with its last emails."""

from __future__ import annotations

import logging
from datetime import datetime

from pydantic import TypeAdapter, ValidationError

from shared.domain.account_update import set_notification_email
from shared.domain.clock import Clock
from shared.domain.dunning_policies import DunningPolicies
from shared.domain.errors import DomainError
from shared.domain.model import ChangeSource, EmailAddress, FieldChange
from shared.domain.partition import AccountPartition
from shared.domain.settle_balance import authorize, quote_scope
from shared.services.ports import AccountUnitOfWork
from shared.services.unit_of_work import with_fresh_partition
from shared.services.views import NotificationEmailView, Overview, Quote, notification_view, overview_of, quote_of

log = logging.getLogger(__name__)
_EMAIL_ADDRESS: TypeAdapter[str] = TypeAdapter(EmailAddress)


class InvalidNotificationEmailError(DomainError):
    pass


class NewerNotificationEmailError(DomainError):
    """The address was set by a change dated after this one (an older change never wins): read it, then decide."""

    def __init__(self, changed_at: datetime) -> None:
        super().__init__(f"the notification address was changed later, at {changed_at.isoformat()}; nothing changed")
        self.changed_at = changed_at


def account_overview(
    accounts: AccountUnitOfWork, clock: Clock, policies: DunningPolicies, account_id: str, principal_id: str
) -> Overview:
    """Subscriptions with state, method, outstanding amount and dates; open alerts and payment methods."""
    partition = accounts.load(account_id)
    account = authorize(partition, principal_id)
    return overview_of(partition, policies.for_account(account), clock.now())


def quote_settlement(
    accounts: AccountUnitOfWork,
    account_id: str,
    principal_id: str,
    subscription_id: str,
    payment_method_id: str | None = None,
) -> Quote:
    """What must be paid at once to bring the subscription back, with the chosen method's own debt added."""
    partition = accounts.load(account_id)
    account = authorize(partition, principal_id)
    subscription, scope = quote_scope(partition, account, subscription_id, payment_method_id)
    return quote_of(partition, subscription.id, scope)


def notification_email(
    accounts: AccountUnitOfWork,
    clock: Clock,
    account_id: str,
    principal_id: str,
    new_address: str | None = None,
) -> NotificationEmailView:
    """Read the billing notification address with the last notifications' status, or change it (dated now)."""
    if new_address is None:
        partition = accounts.load(account_id)
        authorize(partition, principal_id)
        return notification_view(partition, changed=False)
    try:
        address = _EMAIL_ADDRESS.validate_python(new_address)
    except ValidationError as error:
        raise InvalidNotificationEmailError("not a valid email address") from error
    change = FieldChange(at=clock.now(), source=ChangeSource.ADMIN, cause=principal_id)

    def apply(partition: AccountPartition) -> tuple[AccountPartition, bool]:
        account = authorize(partition, principal_id)
        if address == account.notification_email:
            return partition, False  # not a change: nothing to date, nothing written
        if not set_notification_email(partition, address, change):
            stored = account.notification_email_changed
            raise NewerNotificationEmailError(stored.at if stored is not None else change.at)
        return partition, True

    partition, changed = with_fresh_partition(accounts, account_id, apply)
    if changed:
        log.info("notification address of account %s changed by its admin", account_id)
    return notification_view(partition, changed=changed)
