"""ZIP archives as locations (``zip:PATH``); see ``location.py`` for how they work.

Modules: ``format`` (the ZIP records), ``names`` (names an archive can hold), ``view``
(the members as a pure model), ``archive`` (reading the file, cached per version),
``stream`` (decompressing one member), ``stage`` and ``temps`` (temporary files beside
the archive), ``writer`` (building a new archive), ``batch`` and ``changes`` (batches and
the rewrite that lands them), ``errors`` (exceptions to typed errors), ``location``.
"""

from filesync.locations.zip.location import ZipLocation

__all__ = ["ZipLocation"]
