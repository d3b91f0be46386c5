"""Entry point: ``python main.py LOCATION LOCATION [...]`` (see ``--help``)."""

import sys

from filesync.cli import main

if __name__ == "__main__":
    sys.exit(main())
