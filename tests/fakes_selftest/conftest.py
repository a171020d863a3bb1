"""Self-tests of the fake upstream servers (tests/fakes/*) through the real client libraries."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Loopback must never go through a proxy (requests/aiohttp honour *_PROXY env vars).
for _var in ("NO_PROXY", "no_proxy"):
    _have = [h for h in os.environ.get(_var, "").split(",") if h.strip()]
    for _host in ("127.0.0.1", "localhost"):
        if _host not in _have:
            _have.append(_host)
    os.environ[_var] = ",".join(_have)

# `tests.fakes` lives outside the installed packages: make the repo root importable
# even when pytest is started as `pytest` rather than `python -m pytest`.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
