"""A small typed Result: operations that can fail return ``Ok(value)`` or ``Err(message)``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Generic, Literal, NoReturn, TypeVar, Union

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


@dataclass(frozen=True)
class Ok(Generic[T_co]):
    """A successful outcome carrying ``value``."""

    value: T_co
    #: Always True; a literal, so type checkers narrow ``Result`` on ``if result.ok``.
    ok: ClassVar[Literal[True]] = True

    def unwrap(self) -> T_co:
        """Return the value."""
        return self.value


@dataclass(frozen=True)
class Err:
    """A failed outcome with a message a user can act on."""

    message: str
    #: Always False; see ``Ok.ok``.
    ok: ClassVar[Literal[False]] = False

    def unwrap(self) -> NoReturn:
        """Raise, because there is no value; callers should check ``ok`` first."""
        raise ResultError(self.message)


class ResultError(RuntimeError):
    """Raised by ``Err.unwrap()``: a programming error, not a user-facing one."""


Result = Union[Ok[T], Err]
