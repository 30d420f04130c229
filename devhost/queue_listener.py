"""Queue triggers: poll a storage queue with host.json semantics (batches, backoff, retries, poison queue)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.functions.queue import QueueMessage as TriggerMessage
from azure.storage.queue import LinearRetry, QueueClient, QueueMessage

if TYPE_CHECKING:
    from devhost.app_loader import QueueFunction
    from devhost.host_config import QueueOptions
    from devhost.invoker import Invoker

logger = logging.getLogger("devhost.queue")

# Long enough for a local invocation; the real host renews it, which the local host does not need to.
IN_FLIGHT_VISIBILITY = timedelta(minutes=10)
MIN_POLLING_INTERVAL = timedelta(milliseconds=100)
# The library's constructor is unannotated; this typed alias keeps strict mypy useful around it.
_trigger_message: Callable[..., object] = TriggerMessage


class MessageDecodeError(ValueError):
    pass


class QueueListener:
    def __init__(self, function: QueueFunction, options: QueueOptions, invoker: Invoker) -> None:
        self.function = function
        self._options = options
        self._invoker = invoker
        connection, name = function.connection_string, function.queue_name
        # The poll loop is its own retry; the SDK's default retries would stall it (and shutdown) for minutes.
        self._poller = QueueClient.from_connection_string(connection, name, retry_total=0, read_timeout=30)
        self._client = QueueClient.from_connection_string(connection, name, retry_policy=_settle_retry())
        self._poison = QueueClient.from_connection_string(connection, f"{name}-poison", retry_policy=_settle_retry())
        self._reachable = True
        self._poison_ready = False
        self._stopping = threading.Event()
        self._slots = threading.Condition()
        self._in_flight = 0
        self._executor = ThreadPoolExecutor(
            max_workers=options.batch_size + options.new_batch_threshold,
            thread_name_prefix=f"devhost-queue-{function.name}",
        )
        self._thread = threading.Thread(target=self._poll, name=f"devhost-poll-{function.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._slots:
            self._slots.notify_all()

    def join(self) -> None:
        """Wait for the poller and every message already received."""
        self._thread.join()
        self._executor.shutdown(wait=True)

    def _poll(self) -> None:
        delay = MIN_POLLING_INTERVAL
        queue_ready = False
        while not self._stopping.is_set():
            if not self._wait_for_capacity():
                return
            try:
                if not queue_ready:
                    _create_if_missing(self._poller)
                    queue_ready = True
                messages = self._receive()
            except AzureError as error:
                self._report_unreachable(error)
                queue_ready = False  # it may have been deleted while the host runs
                messages = []
            else:
                self._report_reachable()
            if messages:
                delay = MIN_POLLING_INTERVAL
                for message in messages:
                    self._dispatch(message)
            else:
                self._stopping.wait(delay.total_seconds())
                delay = min(delay * 2, self._options.max_polling_interval)

    def _wait_for_capacity(self) -> bool:
        """Fetch a new batch only when the in-flight count is down to newBatchThreshold, like the host."""
        with self._slots:
            self._slots.wait_for(
                lambda: self._stopping.is_set() or self._in_flight <= self._options.new_batch_threshold
            )
        return not self._stopping.is_set()

    def _report_unreachable(self, error: AzureError) -> None:
        if self._reachable:
            logger.warning(
                "[%s] polling queue '%s' failed, retrying every %s s: %s",
                self.function.name,
                self.function.queue_name,
                self._options.max_polling_interval.total_seconds(),
                str(error).splitlines()[0] if str(error) else type(error).__name__,
            )
        self._reachable = False

    def _report_reachable(self) -> None:
        if not self._reachable:
            logger.info("[%s] queue '%s' is reachable again", self.function.name, self.function.queue_name)
        self._reachable = True

    def _receive(self) -> list[QueueMessage]:
        pages = self._poller.receive_messages(
            messages_per_page=self._options.batch_size,
            max_messages=self._options.batch_size,
            visibility_timeout=int(IN_FLIGHT_VISIBILITY.total_seconds()),
        ).by_page()
        return list(next(pages, []))

    def _dispatch(self, message: QueueMessage) -> None:
        with self._slots:
            self._in_flight += 1
        self._executor.submit(self._process, message)

    def _process(self, message: QueueMessage) -> None:
        try:
            self._handle(message)
        except AzureError as error:
            # The message reappears after its in-flight visibility ends, as after a host crash.
            logger.warning("[%s] settling message %s failed: %s", self.function.name, message.id, error)
        except Exception:
            logger.exception("[%s] unexpected error handling message %s", self.function.name, message.id)
        finally:
            with self._slots:
                self._in_flight -= 1
                self._slots.notify_all()

    def _handle(self, message: QueueMessage) -> None:
        try:
            trigger_value = self._trigger_value(message)
        except MessageDecodeError as error:
            logger.warning("[%s] message %s: %s", self.function.name, message.id, error)
            self._fail(message)
            return
        reason = (
            f"New queue message detected on {self.function.queue_name} "
            f"(Id={message.id}, DequeueCount={message.dequeue_count})"
        )
        try:
            self._invoker.invoke(self.function, trigger_value, reason)
        except Exception:
            self._fail(message)
            return
        self._client.delete_message(message.id, message.pop_receipt)

    def _trigger_value(self, message: QueueMessage) -> object:
        body = self._decode(str(message.content or ""))
        if self.function.body_type == "bytes":
            return body
        if self.function.body_type == "str":
            try:
                return body.decode("utf-8")
            except UnicodeDecodeError as error:
                raise MessageDecodeError("body is not valid UTF-8") from error
        return _trigger_message(
            id=message.id,
            body=body,
            dequeue_count=message.dequeue_count,
            pop_receipt=message.pop_receipt,
            insertion_time=message.inserted_on,
            expiration_time=message.expires_on,
            time_next_visible=message.next_visible_on,
        )

    def _decode(self, text: str) -> bytes:
        if self._options.message_encoding == "none":
            return text.encode("utf-8")
        try:
            return base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError) as error:
            raise MessageDecodeError(
                "content is not valid base64 (host.json messageEncoding is 'base64'; send with "
                "TextBase64EncodePolicy or set messageEncoding to 'none')"
            ) from error

    def _fail(self, message: QueueMessage) -> None:
        dequeue_count = message.dequeue_count or 0
        if dequeue_count >= self._options.max_dequeue_count:
            if not self._poison_ready:
                _create_if_missing(self._poison)
                self._poison_ready = True
            self._poison.send_message(message.content)
            self._client.delete_message(message.id, message.pop_receipt)
            logger.warning(
                "[%s] message %s failed %d times; moved to '%s-poison'",
                self.function.name,
                message.id,
                dequeue_count,
                self.function.queue_name,
            )
            return
        self._client.update_message(
            message.id,
            pop_receipt=message.pop_receipt,
            visibility_timeout=int(self._options.visibility_timeout.total_seconds()),
        )


def _settle_retry() -> LinearRetry:
    return LinearRetry(backoff=1, retry_total=3, random_jitter_range=1)


def _create_if_missing(client: QueueClient) -> None:
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
