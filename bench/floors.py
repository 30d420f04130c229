"""Floors: the bare SDK calls an operation needs at minimum, with no framework around them.

- An event: receive it from the queue (in batches, as the host does), read the account partition in one query,
  write the event's rows (account, card, subscriptions, charges, processed marker) in one transaction, delete the
  message.
- A settlement: remember the webhook id (one insert), read the account partition, claim the payment (one
  transaction: account row, settlement, idempotency record), record the charge (one gateway insert), commit the
  success (one transaction: account row, charges, subscriptions, settlement, record, receipt).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import TableClient, UpdateMode
from azure.storage.queue import QueueClient, QueueMessage

from shared.storage.layout import ACCOUNTS_TABLE, GATEWAY_TABLE, WEBHOOKS_TABLE

MIN_POLL = 0.1
MAX_POLL = 2.0


class EventFloor:
    """A queue consumer shaped like the host's (batch size, new-batch threshold, backoff) doing the minimum."""

    def __init__(self, connection_string: str, queue_name: str, batch_size: int, new_batch_threshold: int) -> None:
        self._queue = QueueClient.from_connection_string(connection_string, queue_name)
        self._accounts = TableClient.from_connection_string(connection_string, ACCOUNTS_TABLE)
        self._batch_size = batch_size
        self._threshold = new_batch_threshold
        self._pool = ThreadPoolExecutor(batch_size + new_batch_threshold)
        self._slots = threading.Condition()
        self._in_flight = 0
        self.processed = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._slots:
            self._slots.notify_all()
        self._thread.join()
        self._pool.shutdown(wait=True)

    def _poll(self) -> None:
        delay = MIN_POLL
        while not self._stopping.is_set():
            with self._slots:
                self._slots.wait_for(lambda: self._stopping.is_set() or self._in_flight <= self._threshold)
            messages = list(
                next(
                    self._queue.receive_messages(
                        messages_per_page=self._batch_size, max_messages=self._batch_size, visibility_timeout=600
                    ).by_page(),
                    [],
                )
            )
            if not messages:
                self._stopping.wait(delay)
                delay = min(delay * 2, MAX_POLL)
                continue
            delay = MIN_POLL
            for message in messages:
                with self._slots:
                    self._in_flight += 1
                self._pool.submit(self._process, message)

    def _process(self, message: QueueMessage) -> None:
        try:
            event = json.loads(base64.b64decode(str(message.content)))
            data = event["data"]
            account_id = data["account"]["id"]
            list(self._accounts.query_entities("PartitionKey eq @pk", parameters={"pk": account_id}))
            rows: list[tuple[str, Any]] = [
                ("account", data["account"]),
                (f"pm:{data['paymentMethod']['id']}", data["paymentMethod"]),
                *((f"sub:{s['id']}", s) for s in data["subscriptions"]),
                *((f"chg:{c['invoiceId']}", c) for c in data["charges"]),
                (f"evt:{event['id']}", {"type": event["type"]}),
            ]
            self._accounts.submit_transaction(
                [
                    ("create", {"PartitionKey": account_id, "RowKey": key, "Data": json.dumps(value)})
                    for key, value in rows
                ]
            )
            self._queue.delete_message(message.id, message.pop_receipt)
            with self._slots:
                self.processed += 1
        finally:
            with self._slots:
                self._in_flight -= 1
                self._slots.notify_all()


class SettlementFloor:
    """The minimum a safe settlement needs, as bare SDK calls against the same tables the app uses."""

    def __init__(self, connection_string: str) -> None:
        self._accounts = TableClient.from_connection_string(connection_string, ACCOUNTS_TABLE)
        self._webhooks = TableClient.from_connection_string(connection_string, WEBHOOKS_TABLE)
        self._gateway = TableClient.from_connection_string(connection_string, GATEWAY_TABLE)

    def settle(self, account_id: str) -> None:
        key = uuid.uuid4().hex
        self._webhooks.create_entity({"PartitionKey": f"wh-{key[:2]}", "RowKey": key, "RequestHash": key})
        rows = list(self._accounts.query_entities("PartitionKey eq @pk", parameters={"pk": account_id}))
        root = next(row for row in rows if row["RowKey"] == "account")
        settlement_id = f"stl-{key}"
        claim = self._accounts.submit_transaction(
            [
                _replace(root),
                ("create", {"PartitionKey": account_id, "RowKey": f"stl:{settlement_id}", "Data": "pending"}),
                ("create", {"PartitionKey": account_id, "RowKey": f"idem:{settlement_id}", "Data": "in progress"}),
            ]
        )
        charge_key = hashlib.sha256(settlement_id.encode()).hexdigest()
        self._gateway.create_entity({"PartitionKey": "floor-charges", "RowKey": charge_key, "Result": "succeeded"})
        claimed_root = {**root, "etag": claim[0]["etag"]}
        changed = [row for row in rows if str(row["RowKey"]).startswith(("chg:", "sub:"))]
        etags = {"stl": claim[1]["etag"], "idem": claim[2]["etag"]}
        self._accounts.submit_transaction(
            [
                _replace(claimed_root),
                *(_replace(row) for row in changed),
                _replace_key(account_id, f"stl:{settlement_id}", "succeeded", etags["stl"]),
                _replace_key(account_id, f"idem:{settlement_id}", "completed", etags["idem"]),
                ("create", {"PartitionKey": account_id, "RowKey": f"ntf:receipt-{settlement_id}", "Data": "receipt"}),
            ]
        )


def _replace(row: Any) -> tuple[Any, ...]:
    etag = row["etag"] if isinstance(row, dict) and "etag" in row else row.metadata["etag"]
    entity = {k: v for k, v in dict(row).items() if k != "etag"}
    return (
        "update",
        entity,
        {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified},
    )


def _replace_key(partition: str, row_key: str, data: str, etag: str) -> tuple[Any, ...]:
    return _replace({"PartitionKey": partition, "RowKey": row_key, "Data": data, "etag": etag})


def wait_until(condition: Any, timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
