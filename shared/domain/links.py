"""Links into the portal that emails carry."""

from __future__ import annotations

from urllib.parse import quote, urlencode


def settle_url(portal_base_url: str, account_id: str, subscription_id: str) -> str:
    """The portal page that settles the balance holding this subscription."""
    query = urlencode({"subscription": subscription_id})
    return f"{portal_base_url}/accounts/{quote(account_id, safe='')}/settle?{query}"


def billing_url(portal_base_url: str, account_id: str) -> str:
    return f"{portal_base_url}/accounts/{account_id}/billing"
