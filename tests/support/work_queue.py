"""Run the retention work queue in a test as the Functions host would: receive, invoke, delete; retry on failure
up to host.json's maxDequeueCount, then move the message to `retention-work-poison`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from azure.core.exceptions import ResourceExistsError
from azure.functions.queue import QueueMessage
from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient

from functions.retention_worker.handler import handle_work, max_dequeue_count, retention_worker
from shared.bootstrap import Dependencies
from shared.domain.retention_work import RETENTION_WORK_QUEUE, decode_work


def work_queue(connection_string: str, name: str = RETENTION_WORK_QUEUE) -> QueueClient:
    queue = QueueClient.from_connection_string(
        connection_string,
        name,
        message_encode_policy=BinaryBase64EncodePolicy(),
        message_decode_policy=BinaryBase64DecodePolicy(),
    )
    with contextlib.suppress(ResourceExistsError):
        queue.create_queue()
    return queue


def clear_work_queues(connection_string: str) -> None:
    """Tests share one Azurite: start with empty work and poison queues."""
    for name in (RETENTION_WORK_QUEUE, f"{RETENTION_WORK_QUEUE}-poison"):
        work_queue(connection_string, name).clear_messages()


@dataclass
class Drained:
    kinds: list[str] = field(default_factory=list)  # the kind of every item run, in order
    failures: int = 0
    poisoned: list[bytes] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return self.kinds.count(kind)


def worker_on(deps: Dependencies) -> Callable[[QueueMessage], None]:
    """The worker function's logic on the given dependencies (a test world's) instead of the process-wide ones."""

    def run(message: QueueMessage) -> None:
        handle_work(deps, message.get_body(), message_id=message.id, dequeue_count=message.dequeue_count)

    return run


def drain(
    connection_string: str,
    handler: Callable[[QueueMessage], None] = retention_worker,
    *,
    max_items: int = 10_000,
) -> Drained:
    """Run every message until the queue is empty, the ones the work sends on included."""
    queue = work_queue(connection_string)
    poison = work_queue(connection_string, f"{RETENTION_WORK_QUEUE}-poison")
    drained = Drained()
    while len(drained.kinds) < max_items:
        messages = list(queue.receive_messages(messages_per_page=32, visibility_timeout=60, max_messages=32))
        if not messages:
            return drained
        for message in messages:
            body = bytes(message.content)
            with contextlib.suppress(Exception):
                drained.kinds.append(decode_work(body).kind)
            try:
                handler(
                    QueueMessage(
                        id=message.id, body=body, dequeue_count=message.dequeue_count, pop_receipt=message.pop_receipt
                    )
                )
            except Exception:
                drained.failures += 1
                if (message.dequeue_count or 1) >= max_dequeue_count():
                    poison.send_message(body)
                    queue.delete_message(message)
                    drained.poisoned.append(body)
                else:
                    queue.update_message(message, visibility_timeout=0)
                continue
            queue.delete_message(message)
    raise AssertionError(f"the work queue did not drain within {max_items} items")
