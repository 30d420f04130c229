"""Table `webhooks`: one row per webhook id (hashed), with the fingerprint of its request and an expiry."""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from shared.domain.clock import Clock
from shared.storage.layout import WEBHOOKS_TABLE, webhook_keys
from shared.storage.tables import TableStorage, storage_errors
from shared.webhooks import MIN_LEDGER_RETENTION, VerifiedWebhook, WebhookDelivery, WebhookReplayError


class TableWebhookLedger:
    def __init__(self, storage: TableStorage, *, clock: Clock, retention: timedelta = MIN_LEDGER_RETENTION) -> None:
        self._table = storage.table(WEBHOOKS_TABLE)
        self._clock = clock
        self._retention = retention

    def remember(self, webhook: VerifiedWebhook, fingerprint: str) -> WebhookDelivery:
        """Record the id: FIRST when new, RETRY for the same request again; WebhookReplayError for another one."""
        partition, key = webhook_keys(webhook.id)
        now = self._clock.now()
        entity = {
            "PartitionKey": partition,
            "RowKey": key,
            "RequestHash": fingerprint,
            "SeenAt": now,
            "ExpiresAt": now + max(self._retention, MIN_LEDGER_RETENTION),
        }
        with storage_errors():
            try:
                self._table.create_entity(entity)
            except ResourceExistsError:
                existing = self._table.get_entity(partition, key)
            else:
                return WebhookDelivery.FIRST
        if not hmac.compare_digest(str(existing.get("RequestHash", "")), fingerprint):
            raise WebhookReplayError("this webhook-id was already used for another request")
        return WebhookDelivery.RETRY

    def purge_expired(self, now: datetime) -> int:
        """Delete ids expired by `now` and by the ledger's own clock (a scan of the small table); how many went."""
        cutoff = min(now, self._clock.now())
        removed = 0
        with storage_errors():
            expired = self._table.query_entities(
                "ExpiresAt lt @now", parameters={"now": cutoff}, select=["PartitionKey", "RowKey"]
            )
            for row in expired:
                try:
                    self._table.delete_entity(row["PartitionKey"], row["RowKey"])
                except ResourceNotFoundError:
                    continue
                removed += 1
        return removed
