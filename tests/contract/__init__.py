"""The backend contract suite: one set of tests every location backend must pass unchanged."""
