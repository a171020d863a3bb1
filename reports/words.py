"""Counted nouns in words: "1 trade", "6 trades", "1 position", "0 positions".

Every report page, summary and commentary line says its counts through these (never "trade(s)"
or "1 trades"); the templates get them as the ``plural`` and ``noun`` filters.
"""

from __future__ import annotations

import math
from typing import Any

IRREGULAR = {"was": "were", "is": "are", "has": "have", "entry": "entries", "strategy": "strategies"}


def noun(n: Any, word: str, many: str | None = None) -> str:
    """``word`` or its plural form for the count ``n`` (only exactly one is singular)."""
    try:
        one = math.isfinite(float(n)) and float(n) == 1.0
    except (TypeError, ValueError):
        one = False
    if one:
        return word
    return many or IRREGULAR.get(word) or f"{word}s"


def plural(n: Any, word: str, many: str | None = None) -> str:
    """``"1 trade"``, ``"6 trades"``; the count is printed as given (ints as ints)."""
    return f"{n} {noun(n, word, many)}"
