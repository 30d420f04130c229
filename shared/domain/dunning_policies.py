"""Dunning policies per account: named sets of retention numbers, read from the `DUNNING_POLICIES` file.

The file is `{"policies": {"<id>": {"gracePeriodDays": 60, "reminderDays": [7, 14], ...}}}`. A policy names only
what differs: every key it omits is the `default` policy's (the settings' own numbers, which the file's `default`
entry may change). An account keeps the id of its policy; an account without one follows `default`. No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from shared.domain.errors import DomainError
from shared.domain.model import DEFAULT_DUNNING_POLICY, IDENTIFIER, Account, Frozen
from shared.domain.retention_policy import MINIMUM_RETENTION_DAYS, RetentionPolicy

DEFAULT_POLICY = DEFAULT_DUNNING_POLICY
_MAX_DAYS = 3650


class DunningPoliciesError(ValueError):
    """The policies document is malformed; the message names the key at fault (`policies.gold.retentionDays`)."""


class UnknownDunningPolicyError(DomainError):
    """An event names a dunning policy that is not configured: bad input, set aside with the field and the id."""


Days = tuple[int, ...]


class _PolicyEntry(BaseModel):
    """One entry of the file: only what differs from `default`; unknown keys are refused (a typo must not pass)."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=False)

    grace_period_days: int | None = Field(default=None, ge=1, le=365)
    reminder_days: Days | None = None
    warn_days_before_cancellation: int | None = Field(default=None, ge=0, le=60)
    deletion_warning_days: Days | None = None
    retention_days: int | None = Field(default=None, ge=MINIMUM_RETENTION_DAYS, le=_MAX_DAYS)
    retry_days: Days | None = None

    def over(self, base: RetentionPolicy) -> RetentionPolicy:
        named = self.model_dump(exclude_none=True)
        for key in ("reminder_days", "deletion_warning_days"):
            if key in named:
                named[key] = tuple(sorted(set(named[key])))
        # Validated again as a whole, so that RetentionPolicy's own rules hold for the combination.
        return RetentionPolicy.model_validate({**base.model_dump(), **named}) if named else base


class _PoliciesDocument(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    policies: dict[str, _PolicyEntry]


class DunningPolicies(Frozen):
    """Every configured policy by id; `default` is always there."""

    policies: Mapping[str, RetentionPolicy] = Field(default_factory=lambda: {DEFAULT_POLICY: RetentionPolicy()})

    @property
    def default(self) -> RetentionPolicy:
        return self.policies[DEFAULT_POLICY]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.policies))

    def knows(self, policy_id: str) -> bool:
        return policy_id in self.policies

    def for_id(self, policy_id: str | None) -> RetentionPolicy:
        """The policy of that id (None: `default`); a policy no longer configured falls back to `default`."""
        return self.policies.get(policy_id or DEFAULT_POLICY, self.default)

    def for_account(self, account: Account | None) -> RetentionPolicy:
        return self.for_id(account.dunning_policy if account is not None else None)

    def require(self, policy_id: str, *, field: str) -> str:
        """`policy_id` if it is configured; else UnknownDunningPolicyError naming the event's field and the id."""
        if not self.knows(policy_id):
            raise UnknownDunningPolicyError(
                f"{field}: unknown dunning policy {policy_id!r}; configured: {', '.join(self.ids)}"
            )
        return policy_id


def single_policy(policy: RetentionPolicy) -> DunningPolicies:
    """Only `default`: what an app without a DUNNING_POLICIES file runs with."""
    return DunningPolicies(policies={DEFAULT_POLICY: policy})


def parse_dunning_policies(document: object, default: RetentionPolicy) -> DunningPolicies:
    """The policies of a parsed JSON document over `default`; DunningPoliciesError names the key at fault."""
    try:
        parsed = _PoliciesDocument.model_validate(document)
    except ValidationError as error:
        raise DunningPoliciesError(_first_problem(error)) from None
    for policy_id in parsed.policies:
        if not _is_identifier(policy_id):
            raise DunningPoliciesError(
                f"policies.{policy_id[:64]}: a policy id is letters, digits and . _ : @ + - (at most 128)"
            )
    entries = dict(parsed.policies)
    base_entry = entries.pop(DEFAULT_POLICY, None)
    base = _checked(DEFAULT_POLICY, base_entry, default) if base_entry is not None else default
    policies = {DEFAULT_POLICY: base}
    policies.update({policy_id: _checked(policy_id, entry, base) for policy_id, entry in entries.items()})
    return DunningPolicies(policies=policies)


def _checked(policy_id: str, entry: _PolicyEntry, base: RetentionPolicy) -> RetentionPolicy:
    for key, days in (
        ("reminderDays", entry.reminder_days),
        ("deletionWarningDays", entry.deletion_warning_days),
        ("retryDays", entry.retry_days),
    ):
        if days is not None and any(day < 1 or day > 365 for day in days):
            raise DunningPoliciesError(f"policies.{policy_id}.{key}: days must be whole numbers from 1 to 365")
    try:
        return entry.over(base)
    except ValidationError as error:
        # RetentionPolicy's own rules (retry_days' shape among them) speak of its snake_case fields.
        issue = error.errors(include_url=False)[0]
        key = to_camel(str(issue["loc"][0])) if issue["loc"] else "(policy)"
        raise DunningPoliciesError(f"policies.{policy_id}.{key}: {_message(issue)}") from None


def _first_problem(error: ValidationError) -> str:
    issue = error.errors(include_url=False)[0]
    path = ".".join(str(part) for part in issue["loc"]) or "(document)"
    return f"{path}: {_message(issue)}"


def _message(issue: Any) -> str:
    context = issue.get("ctx") or {}
    if issue["type"] == "greater_than_equal":
        return f"must be at least {context['ge']}"
    if issue["type"] == "less_than_equal":
        return f"must be at most {context['le']}"
    if issue["type"] == "extra_forbidden":
        return "unknown key"
    return str(issue["msg"])


def _is_identifier(value: str) -> bool:
    return re.fullmatch(IDENTIFIER, value) is not None
