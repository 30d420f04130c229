"""What the portal reads before paying: the overview, the quote, and the billing address with its last emails."""

from __future__ import annotations

import logging

from pydantic import ValidationError

from shared.domain.clock import Clock
from shared.domain.delivery_reports import resolve_if_address_changed
from shared.domain.errors import DomainError
from shared.domain.model import Account
from shared.domain.partition import AccountPartition
from shared.domain.settle_balance import authorize, quote_scope
from shared.services.ports import AccountUnitOfWork
from shared.services.unit_of_work import with_fresh_partition
from shared.services.views import NotificationEmailView, Overview, Quote, notification_view, overview_of, quote_of

log = logging.getLogger(__name__)


class InvalidNotificationEmailError(DomainError):
    pass


def account_overview(accounts: AccountUnitOfWork, account_id: str, principal_id: str) -> Overview:
    """Subscriptions with state, method and outstanding amount, open alerts and payment methods."""
    partition = accounts.load(account_id)
    authorize(partition, principal_id)
    return overview_of(partition)


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
    accounts: AccountUnitOfWork, clock: Clock, account_id: str, principal_id: str, new_address: str | None = None
) -> NotificationEmailView:
    """Read the billing notification address with the last notifications' status, or change it."""
    if new_address is None:
        partition = accounts.load(account_id)
        authorize(partition, principal_id)
        return notification_view(partition, changed=False)

    def change(partition: AccountPartition) -> tuple[AccountPartition, bool]:
        account = authorize(partition, principal_id)
        if account.notification_email == new_address:
            return partition, False
        try:
            updated = Account.model_validate({**account.model_dump(), "notification_email": new_address})
        except ValidationError as error:
            raise InvalidNotificationEmailError("not a valid email address") from error
        partition.set_account(updated)
        # Emails not yet sent go to the new address: the old one is likely why the customer asked.
        partition.put(
            *(n.model_copy(update={"to_address": new_address}) for n in partition.notifications if n.is_pending)
        )
        resolve_if_address_changed(partition, clock.now())
        return partition, True

    partition, changed = with_fresh_partition(accounts, account_id, change)
    if changed:
        log.info("notification address of account %s changed", account_id)
    return notification_view(partition, changed=changed)
