"""Table `sentemails`: which account and notification each sent email's message id belongs to (keys in layout.py).

Delivery reports name only the message id; this index finds the account partition to apply them to. A row is
written when the email is sent, before the notification records the send, so a notification never knows a message
id the index lacks. The first row for a message id stands.
"""

from __future__ import annotations

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from shared.services.ports import SentMessage
from shared.storage.layout import SENT_EMAILS_TABLE, message_keys
from shared.storage.tables import TableStorage, storage_errors


class TableMessageIndex:
    def __init__(self, storage: TableStorage) -> None:
        self._table = storage.table(SENT_EMAILS_TABLE)

    def remember(self, message: SentMessage) -> None:
        partition, key = message_keys(message.message_id)
        entity = {
            "PartitionKey": partition,
            "RowKey": key,
            "MessageId": message.message_id,
            "AccountId": message.account_id,
            "NotificationId": message.notification_id,
        }
        with storage_errors():
            try:
                self._table.create_entity(entity)
            except ResourceExistsError:
                return

    def find(self, message_id: str) -> SentMessage | None:
        partition, key = message_keys(message_id)
        with storage_errors():
            try:
                entity = self._table.get_entity(partition, key)
            except ResourceNotFoundError:
                return None
        return SentMessage(
            message_id=str(entity["MessageId"]),
            account_id=str(entity["AccountId"]),
            notification_id=str(entity["NotificationId"]),
        )
