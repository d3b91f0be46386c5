"""filesync: keep any number of storage locations identical, losing nothing on the way."""

__version__ = "0.1.0"
