"""Guards on model-written text before anyone reads it.

:func:`check_text` returns the cleaned text, or ``None`` (use the template) when the text:

- is empty, or longer than ``max_chars`` after cutting it to ``max_sentences`` sentences;
- contains a link, an @mention, a Discord/Telegram mention (``<@``, ``<#``) or a code fence;
- contains a number that is not present in the input data (see :func:`numbers_ok`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

_NUM = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_FORBIDDEN = re.compile(r"(://|www\.|@|<[@#!]|```)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def numbers_in_text(text: str) -> list[str]:
    """Numeric tokens of ``text`` (unsigned; ``1,000.5`` is one token; dates split into parts)."""
    return _NUM.findall(text or "")


def _to_float(token: str) -> float:
    return float(token.replace(",", ""))


def _decimals(token: str) -> int:
    return len(token.split(".", 1)[1]) if "." in token else 0


def allowed_numbers(data: Any) -> set[float]:
    """Every number in ``data``: numeric values (absolute, and x100 for fractions) and the
    numbers written inside its strings and keys."""
    out: set[float] = set()

    def walk(obj: Any, depth: int = 0) -> None:
        if depth > 12:
            return
        if isinstance(obj, bool) or obj is None:
            return
        if isinstance(obj, (int, float)):
            f = float(obj)
            if math.isfinite(f):
                out.add(abs(f))
                if abs(f) < 1.5:
                    out.add(abs(f) * 100.0)
            return
        if isinstance(obj, str):
            for tok in numbers_in_text(obj):
                out.add(_to_float(tok))
            return
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(str(k), depth + 1)
                walk(v, depth + 1)
            return
        if isinstance(obj, Iterable):
            for v in obj:
                walk(v, depth + 1)

    walk(data)
    return out


def numbers_ok(text: str, data: Any) -> bool:
    """True when every number in ``text`` is a value of ``data`` written at some precision
    (``4.2`` may appear as ``4.2`` or ``4``; ``0.42`` may appear as ``42``%)."""
    tokens = numbers_in_text(text)
    if not tokens:
        return True
    allowed = sorted(allowed_numbers(data))
    for tok in tokens:
        value = _to_float(tok)
        tol = 0.5 * 10 ** (-_decimals(tok)) + 1e-9
        if not any(abs(value - a) <= tol for a in allowed):
            return False
    return True


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def clean(text: str) -> str:
    return re.sub(r"\s+", " ", _CONTROL.sub(" ", text or "")).strip()


def check_text(text: Any, data: Any, *, max_sentences: int = 3, max_chars: int = 600) -> str | None:
    if not isinstance(text, str):
        return None
    t = clean(text)
    if not t or _FORBIDDEN.search(t):
        return None
    parts = sentences(t)
    if len(parts) > max_sentences:
        t = " ".join(parts[:max_sentences])
    if len(t) > max_chars:
        return None
    if not numbers_ok(t, data):
        return None
    return t
