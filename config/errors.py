"""Errors raised by services. They know nothing of HTTP; the API layer maps them."""


class DomainError(Exception):
    """A business rule refused the operation."""


class ConflictError(DomainError):
    """The operation does not fit the resource's current state (HTTP 409)."""
