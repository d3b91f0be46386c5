"""Retry FTP replies that mean "not now" with a short, bounded backoff.

Servers answer a data command (RETR, STOR, LIST, MLSD, ...) with 425 (no data connection:
pure-ftpd's "Unable to identify the local data socket"), 426 (transfer aborted) or 450
(file busy) when something passing went wrong, and 421 when they close the session. One
loop, ``retrying``, serves every caller; what may be retried is the caller's decision.
"""

from __future__ import annotations

import ftplib
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from filesync.locations.ftp.errors import reply_code

log = logging.getLogger("filesync")

T = TypeVar("T")

#: Pauses between attempts (seconds): four attempts in under two seconds of waiting.
DELAYS = (0.2, 0.5, 1.0)
#: Replies that may go away when the same command is sent again.
TRANSIENT_CODES = frozenset({"421", "425", "426", "450"})


def is_transient(exc: BaseException) -> bool:
    """True for a 421, 425, 426 or 450 reply."""
    return isinstance(exc, ftplib.error_temp) and reply_code(exc) in TRANSIENT_CODES


def retry_on_same_connection(exc: BaseException) -> bool:
    """425, 426 or 450: the control connection is fine, so the command can simply be repeated.

    (A 421 closes the connection; the pool replaces it, see ``Session.run``.)
    """
    return is_transient(exc) and reply_code(exc) != "421"


def retrying(action: Callable[[], T], label: str,
             may_retry: Callable[[BaseException], bool] = retry_on_same_connection) -> T:
    """Run ``action``; after an exception ``may_retry`` accepts, pause and run it again.

    At most ``len(DELAYS)`` repeats; the last exception is raised when they are used up.
    """
    for delay in (*DELAYS, None):
        try:
            return action()
        except Exception as exc:
            if delay is None or not may_retry(exc):
                raise
            log.debug("%s answered %s; trying again in %.1f s", label,
                      str(exc).strip() or type(exc).__name__, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
