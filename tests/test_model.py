"""The layering: planning needs only the data model, never a backend or the database."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_importing_the_planner_loads_no_backend_and_no_sqlite():
    probe = ("import sys, filesync.planner; "
             "loaded = [m for m in sys.modules if m == 'sqlite3' or m.startswith("
             "('filesync.locations', 'filesync.state', 'filesync.engine', 'filesync.executor'))]; "
             "print(','.join(sorted(loaded)))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == ""
