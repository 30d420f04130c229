from __future__ import annotations


class DomainError(Exception):
    """A rule of the past-due lifecycle was broken; the message says which, without personal data."""


class InvalidTransitionError(DomainError):
    pass


# Money errors are also ValueErrors, so pydantic reports them as validation errors of the field at fault.
class CurrencyMismatchError(DomainError, ValueError):
    pass


class InvalidAmountError(DomainError, ValueError):
    pass


class UnsupportedCurrencyError(DomainError, ValueError):
    pass


class ConcurrencyError(Exception):
    """Another writer changed the account since it was read; retry from a fresh read."""


class TransientStorageError(Exception):
    """Storage did not answer; the caller may retry later."""
