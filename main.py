"""Entry point: ``python main.py LOCATION LOCATION [...]`` (see ``--help``)."""

import os
import sys

# The package sits beside this file; put it on the path explicitly, so filesync also starts
# where the script's folder is not added automatically (python -I or -P, PYTHONSAFEPATH).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from filesync.cli import main

if __name__ == "__main__":
    sys.exit(main())
