"""What a backend can do beyond the required core, declared as data the engine reads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capabilities:
    """A backend's optional abilities and properties (the defaults fit a local folder).

    The engine decides from these, never from a backend's type: a new backend declares
    what it has and passes the contract suite (``tests/contract/``).
    """

    #: How finely the backend keeps modification times (1: nanoseconds; 10**9: whole
    #: seconds, as FTP's MDTM/MFMT and ZIP's UTC field; 2 * 10**9: DOS times).
    mtime_precision_ns: int = 1
    #: How far two reports of one unchanged file by this backend may differ (listing and
    #: single look-ups that use different commands); 0 where both are exact.
    mtime_tolerance_ns: int = 0
    #: Changes land together when a batch ends (one rewrite of a ZIP archive): the engine
    #: records them only after ``Location.batch()`` closes.
    transactional: bool = False
    #: Round trips dominate (a network backend): the engine lists, hashes and transfers
    #: in parallel threads. Local backends run on one thread (no interpreter-lock fight).
    remote: bool = False
    #: ``rename`` moves a file without copying its bytes (versions are kept that way).
    native_rename: bool = True
    #: The backend can copy a file inside itself without downloading it.
    server_copy: bool = False
    #: A write replaces the real name in one step (the old content never vanishes first).
    atomic_replace: bool = True
    #: Permission bits are kept (``Entry.mode`` read and written).
    keeps_permissions: bool = False
    #: Names are POSIX file names: ``\\`` and ``a:`` are ordinary characters there.
    posix_names: bool = False
    #: Every temporary file a listing reports is known to be abandoned (a lock proves no
    #: filesync run holds it); otherwise only this sync set's own are removed.
    temps_locked: bool = False
    #: ``claim_dir`` creates a directory only if nothing is there, in one atomic step the
    #: server decides (``mkdir``, FTP ``MKD``, an S3 ``If-None-Match: *`` PUT): the engine
    #: builds its hub lease on it. Without it, a location is never leased.
    atomic_claim: bool = False
