"""Local fake upstream servers for tests (bound to 127.0.0.1 only)."""
