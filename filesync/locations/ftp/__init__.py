"""FTP and FTPS servers as locations (``FtpLocation``); one module per concern.

- ``location``: the ``Location`` contract, delegating to the helpers below
- ``session``: connections, the server's features and paths, error messages
- ``tree``: listings, the walk over the tree, look-ups
- ``folders``: creating folders, what is known about them
- ``transfer``: uploads (resume, times) and downloads; ``stream``: the data streams
- ``errors``: failures and their kinds (``FTP_ERRORS``, ``ftp_kind``)
- ``pool``, ``client``, ``login``, ``retry``: connections; ``listing``, ``names``,
  ``paths``: pure parsing and name rules
"""

from filesync.locations.ftp.location import FtpLocation

__all__ = ["FtpLocation"]
