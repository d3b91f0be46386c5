"""A small typed Result: operations that can fail return ``Ok(value)`` or ``Err(message)``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, NoReturn, TypeVar, Union

T = TypeVar("T")


@dataclass(frozen=True)
class Ok(Generic[T]):
    """A successful outcome carrying ``value``."""

    value: T

    @property
    def ok(self) -> bool:
        """True: this is a success."""
        return True

    def unwrap(self) -> T:
        """Return the value."""
        return self.value


@dataclass(frozen=True)
class Err:
    """A failed outcome with a message a user can act on."""

    message: str

    @property
    def ok(self) -> bool:
        """False: this is a failure."""
        return False

    def unwrap(self) -> NoReturn:
        """Raise, because there is no value; callers should check ``ok`` first."""
        raise ResultError(self.message)

    def context(self, prefix: str) -> Err:
        """Return the same error with ``prefix: `` in front of the message."""
        return Err(f"{prefix}: {self.message}")


class ResultError(RuntimeError):
    """Raised by ``Err.unwrap()``: a programming error, not a user-facing one."""


Result = Union[Ok[T], Err]
