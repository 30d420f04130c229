"""`rejections list` and `rejections resubmit ID`: payment events refused as bad input and retention work items set
aside after their last attempt, for operators."""

from __future__ import annotations

import argparse
import contextlib
import json

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.queue import BinaryBase64EncodePolicy, QueueClient

from shared.bootstrap import dependencies
from shared.domain.errors import TransientStorageError
from shared.domain.rejection import Rejection, RejectionStatus
from shared.events.decoding import PAYMENT_EVENTS_QUEUE
from shared.services.rejections import (
    AlreadyResubmittedError,
    RejectionNotFoundError,
)

_REASON_WIDTH = 90


def _list_command(args: argparse.Namespace) -> int:
    status = RejectionStatus(args.status) if args.status else None
    rejections = dependencies().list_rejections(status)
    if args.json:
        print(json.dumps([_as_json(r) for r in rejections], indent=2, ensure_ascii=False))
        return 0
    if not rejections:
        print("no rejected messages")
        return 0
    print(f"{'ID':<38} {'RECEIVED (UTC)':<20} {'STATUS':<11} {'TRIES':>5} {'EVENT':<24} REASON")
    for rejection in rejections:
        reason = rejection.reason if len(rejection.reason) <= _REASON_WIDTH else rejection.reason[:89] + "…"
        print(
            f"{rejection.id:<38} {rejection.received_at:%Y-%m-%d %H:%M:%S} {rejection.status.value:<11} "
            f"{rejection.dequeue_count if rejection.dequeue_count is not None else '-':>5} "
            f"{rejection.event_id or '-':<24} {reason}"
        )
    return 0


def _resubmit_command(args: argparse.Namespace) -> int:
    deps = dependencies()
    found = deps.get_rejection(args.rejection_id)
    # Each rejection goes back to the queue it came from: billing events, or retention work set aside.
    queue_name = found.queue if found is not None else PAYMENT_EVENTS_QUEUE
    queue = QueueClient.from_connection_string(
        deps.settings.storage_connection_string.get_secret_value(),
        queue_name,
        message_encode_policy=BinaryBase64EncodePolicy(),
    )

    def send(body: bytes) -> None:
        with contextlib.suppress(ResourceExistsError):
            queue.create_queue()
        queue.send_message(body)

    try:
        rejection = deps.resubmit_rejection(args.rejection_id, send, force=args.force)
    except RejectionNotFoundError as error:
        print(f"error: {error}")
        return 1
    except AlreadyResubmittedError as error:
        print(f"error: {error}; pass --force to send it again")
        return 1
    except (AzureError, TransientStorageError) as error:
        print(f"error: storage did not answer ({type(error).__name__}); nothing was marked, try again")
        return 2
    event = f" (event {rejection.event_id})" if rejection.event_id else ""
    print(f"re-submitted {rejection.id}{event} to queue '{queue_name}'")
    return 0


def _as_json(rejection: Rejection) -> dict[str, object]:
    record = rejection.model_dump(mode="json", exclude={"raw_body_base64"})
    record["body"] = rejection.raw_body.decode("utf-8", errors="replace")
    return record


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rejections = subparsers.add_parser(
        "rejections",
        help=f"messages of '{PAYMENT_EVENTS_QUEUE}' refused as bad input, and retention work set aside",
    )
    commands = rejections.add_subparsers(dest="rejections_command", required=True)
    listing = commands.add_parser("list", help="list rejected messages, newest first")
    listing.add_argument("--status", choices=[status.value for status in RejectionStatus], help="only this status")
    listing.add_argument("--json", action="store_true", help="full records, message bodies included, as JSON")
    listing.set_defaults(handler=_list_command)
    resubmit = commands.add_parser("resubmit", help="put a rejected message back on the queue it came from")
    resubmit.add_argument("rejection_id", metavar="ID", help="the ID shown by `rejections list`")
    resubmit.add_argument("--force", action="store_true", help="send it again although it was re-submitted before")
    resubmit.set_defaults(handler=_resubmit_command)


__all__ = ["register"]
