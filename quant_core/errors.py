"""Exceptions shared by every quantdesk layer.

Three families are kept apart (see ``docs/design.md``):

* :class:`InputError` and its subclasses: the caller's mistake. The message names the bad
  value and says how to fix it. The CLI prints it on one line and exits with code 2.
* :class:`QuantdeskRuntimeError`: something failed that the caller could not have prevented
  (a provider, a file system). It says whether a retry may help.
* Tool-level refusals that are reported back to an agent (added by the tool layer) are not
  exceptions raised to the user.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "InputError",
    "InsufficientDataError",
    "NotFittedError",
    "QuantdeskError",
    "QuantdeskRuntimeError",
    "SchemaError",
]


class QuantdeskError(Exception):
    """Base class of every error quantdesk raises on purpose.

    Args:
        message: What went wrong, naming the offending value.
        fix: What the caller should do instead. Appended to the message as ``Fix: ...``.
    """

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.fix:
            return f"{self.message} Fix: {self.fix}"
        return self.message


class InputError(QuantdeskError, ValueError):
    """The caller passed something invalid: a bad argument, file, frame or setting."""


class ConfigError(InputError):
    """A configuration value or environment variable is missing or invalid."""


class DataError(InputError):
    """Input data breaks the data contract (empty, NaN/inf, unsorted, duplicated, ...)."""


class SchemaError(DataError):
    """A frame lacks required columns or has columns of the wrong type."""


class InsufficientDataError(DataError):
    """There is not enough data for the request (horizon longer than the data, too few dates)."""


class NotFittedError(InputError):
    """A model or estimator was used before ``fit``."""


class QuantdeskRuntimeError(QuantdeskError, RuntimeError):
    """A failure the caller could not prevent.

    Args:
        message: What failed.
        retryable: Whether the same call may succeed later.
        fix: Optional hint.
    """

    def __init__(self, message: str, *, retryable: bool = False, fix: str | None = None) -> None:
        self.retryable = retryable
        super().__init__(message, fix=fix)
