"""Who can sign in to the local portal: the admins of the demo accounts (cli/demo.py), nothing more."""

from __future__ import annotations

from dataclasses import dataclass

from cli.demo import DEMO_ACCOUNTS
from shared.domain.model import PaymentMethod


@dataclass(frozen=True)
class DemoAccount:
    account_id: str
    admin_principal_id: str
    locale: str
    payment_methods: tuple[PaymentMethod, ...]


def demo_accounts() -> tuple[DemoAccount, ...]:
    return tuple(
        DemoAccount(
            account_id=account.id,
            admin_principal_id=account.admin_principal_id,
            locale=account.locale,
            payment_methods=tuple(methods),
        )
        for account, methods, _ in DEMO_ACCOUNTS
    )


@dataclass(frozen=True)
class Directory:
    """The demo accounts, looked up by principal or by account id."""

    accounts: tuple[DemoAccount, ...]

    @property
    def principals(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.admin_principal_id for a in self.accounts))

    def administered_by(self, principal_id: str) -> tuple[DemoAccount, ...]:
        return tuple(a for a in self.accounts if a.admin_principal_id == principal_id)

    def account(self, account_id: str) -> DemoAccount | None:
        return next((a for a in self.accounts if a.account_id == account_id), None)

    def locale_of_principal(self, principal_id: str | None) -> str | None:
        owned = self.administered_by(principal_id) if principal_id else ()
        return owned[0].locale if owned else None
