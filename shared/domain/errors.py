from __future__ import annotations


class DomainError(Exception):
    """A rule of the past-due lifecycle was broken; the message says which, without personal data."""


class InvalidTransitionError(DomainError):
    pass


class CurrencyMismatchError(DomainError):
    pass


class InvalidAmountError(DomainError):
    pass


class UnsupportedCurrencyError(DomainError):
    pass


class ConcurrencyError(Exception):
    """Another writer changed the account since it was read; retry from a fresh read."""


class TransientStorageError(Exception):
    """Storage did not answer; the caller may retry later."""
