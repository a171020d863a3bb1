"""Overseer tests: real Redis (tests/conftest.py fixtures) + the Anthropic fake through the real SDK.

No ``__init__.py`` here on purpose: a package named ``overseer`` under tests/ would shadow the
real one. Helpers live in ``ov_helpers.py`` (this folder is on sys.path under pytest)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
for _var in ("NO_PROXY", "no_proxy"):
    _have = [h for h in os.environ.get(_var, "").split(",") if h.strip()]
    for _host in ("127.0.0.1", "localhost"):
        if _host not in _have:
            _have.append(_host)
    os.environ[_var] = ",".join(_have)

from tests.fakes.anthropic_api import anthropic_fake, anthropic_fake_session  # noqa: F401
