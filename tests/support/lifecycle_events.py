"""schemas/lifecycle-events.schema.json as a validator, and the lifecycle queue read as a consumer reads it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy
from jsonschema import Draft202012Validator, ValidationError

from shared.adapters.lifecycle_queue import EVENT_SOURCE
from shared.domain.outbox import LifecycleEvent

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "lifecycle-events.schema.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)


def as_sent(event: LifecycleEvent) -> dict[str, Any]:
    """The CloudEvent the queue publisher sends for `event`, through JSON as a consumer reads it."""
    loaded: dict[str, Any] = json.loads(json.dumps(event.to_cloudevent(EVENT_SOURCE)))
    return loaded


def schema_errors(cloudevent: dict[str, Any]) -> list[str]:
    """Every way `cloudevent` breaks the schema (empty when it conforms), readable in an assertion message.

    For the `oneOf` on `type`, the errors reported are those of the branch for the event's own type.
    """
    found: list[str] = []
    for error in VALIDATOR.iter_errors(cloudevent):
        own_branch = [e for e in error.context or () if not _is_about_another_type(e, error.context or ())]
        for detail in own_branch if error.validator == "oneOf" and own_branch else [error]:
            found.append(f"{'/'.join(map(str, detail.absolute_path)) or '<root>'}: {detail.message}")
    return found


def _is_about_another_type(error: ValidationError, siblings: Iterable[ValidationError]) -> bool:
    branch = error.relative_schema_path[0]
    return any(e.relative_schema_path[0] == branch and list(e.absolute_path) == ["type"] for e in siblings)


def lifecycle_messages(connection_string: str, queue_name: str) -> list[str]:
    """The bodies of the messages on a lifecycle queue (decoded from base64, left on the queue), oldest first."""
    queue = QueueClient.from_connection_string(
        connection_string, queue_name, message_decode_policy=TextBase64DecodePolicy()
    )
    try:
        return [message.content for message in queue.peek_messages(max_messages=32)]
    except ResourceNotFoundError:
        return []


def events_of(message_bodies: list[str]) -> list[dict[str, Any]]:
    """The CloudEvents in lifecycle messages: each message is a CloudEvents JSON batch (a JSON array of events)."""
    events: list[dict[str, Any]] = []
    for body in message_bodies:
        batch = json.loads(body)
        assert isinstance(batch, list), f"a lifecycle message is a JSON array of events, not {type(batch).__name__}"
        events.extend(batch)
    return events
