"""Every number a person reads: one formatter per kind, shared by every surface.

Discord / X / Reddit posts, Telegram, the HTML reports and their commentary, the overseer's
narratives, the ledger CLI and the risk-rule messages all format through this module (Jinja
environments get the same functions as filters from :mod:`core.format.jinja`), so the same
figure reads the same everywhere; a surface may only choose how many digits it shows.

Conventions:

- money: ``$1,000.00`` / ``-$812.40``; signed: ``+$892.70`` / ``-$12.05``; always cents.
- percent: ``+35.70%`` (signed) / ``35.70%``; the digits are the surface's choice (posts
  ``+35.7%`` premium, ``+36%`` basic and free; reports ``+35.70%``).
- option price in running text (posts, narratives, Telegram): ``$0.86``; in a table column or
  after a label: ``0.86`` (``price``). Both have two decimals and thousands separators.
- strike: ``590`` / ``592.5`` (no separator, no trailing zeros); expiry ``12/03/26``;
  contract label ``SPY 12/03/26 590C``.
- compact big numbers: ``1.25M`` / ``-3.40B`` (``$1.25M`` for money).
- plurals: ``1 trade``, ``6 trades``, ``1 contract``.
- zero never carries a sign, and a value that rounds to zero at the shown digits is zero
  (``-0.001`` -> ``$0.00``, ``-0.04`` at one digit -> ``0.0%``): no ``-0`` and no ``+0``.
- missing or unusable input (``None``, NaN, infinity, a bool, text that is not a number) is
  :data:`PLACEHOLDER`, never ``nan`` or a crash.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal
from typing import Any

PLACEHOLDER = "n/a"
_UNITS = ((1.0, ""), (1e3, "K"), (1e6, "M"), (1e9, "B"), (1e12, "T"))


def finite(x: Any) -> float | None:
    """``x`` as a finite float, or None (None, bool, NaN, +-inf, not a number)."""
    if x is None or isinstance(x, bool):
        return None
    if isinstance(x, (int, float, Decimal)):
        f = float(x)
    elif isinstance(x, str):
        try:
            f = float(x.strip().replace(",", ""))
        except ValueError:
            return None
    else:
        return None
    return f if math.isfinite(f) else None


def _digits(d: Any) -> int:
    try:
        n = int(d)
    except (TypeError, ValueError):
        return 2
    return min(max(n, 0), 10)


def _body(f: float, digits: int, sep: bool = True, trim: bool = False) -> tuple[bool, str]:
    """(negative, magnitude text) with the sign dropped when the shown value is zero."""
    text = f"{abs(f):{',' if sep else ''}.{digits}f}"
    if trim and "." in text:
        text = text.rstrip("0").rstrip(".")
    negative = f < 0 and any(c not in "0.," for c in text)
    return negative, text


def _sign(negative: bool, text: str, signed: bool) -> str:
    if negative:
        return "-"
    if signed and any(c not in "0.," for c in text):
        return "+"
    return ""


# ------------------------------------------------------------------ plain numbers
def num(x: Any, digits: int = 2, signed: bool = False) -> str:
    """``1234.5 -> "1,234.50"`` (exactly ``digits`` decimals)."""
    f = finite(x)
    if f is None:
        return PLACEHOLDER
    neg, text = _body(f, _digits(digits))
    return _sign(neg, text, signed) + text


def trim(x: Any, digits: int = 2) -> str:
    """At most ``digits`` decimals, trailing zeros dropped: ``5.0 -> "5"``, ``1234.5 -> "1,234.5"``."""
    f = finite(x)
    if f is None:
        return PLACEHOLDER
    neg, text = _body(f, _digits(digits), trim=True)
    return _sign(neg, text, False) + text


def integer(x: Any) -> str:
    """``1234.6 -> "1,235"``."""
    return num(x, 0)


# ------------------------------------------------------------------ money and percent
def money(x: Any, signed: bool = False, digits: int = 2) -> str:
    """``1000 -> "$1,000.00"``, ``-812.4 -> "-$812.40"``; ``signed``: ``+$892.70``."""
    f = finite(x)
    if f is None:
        return PLACEHOLDER
    neg, text = _body(f, _digits(digits))
    return f"{_sign(neg, text, signed)}${text}"


def signed_money(x: Any, digits: int = 2) -> str:
    """``892.7 -> "+$892.70"``, ``-12.05 -> "-$12.05"``, ``0 -> "$0.00"``."""
    return money(x, True, digits)


def pct(x: Any, signed: bool = True, digits: int = 2) -> str:
    """A percentage (``x`` already in percent): ``35.7 -> "+35.70%"``; ``signed=False``: ``35.70%``."""
    f = finite(x)
    if f is None:
        return PLACEHOLDER
    neg, text = _body(f, _digits(digits))
    return f"{_sign(neg, text, signed)}{text}%"


def signed_pct(x: Any, digits: int = 2) -> str:
    return pct(x, True, digits)


def price(x: Any) -> str:
    """A price where its label says what it is (a table column, ``Limit``, ``@``): ``0.86 -> "0.86"``,
    ``5905.1 -> "5,905.10"``. In a sentence use :func:`option_price`."""
    return num(x, 2)


def option_price(x: Any) -> str:
    """An option premium (or any price) in running text: ``0.86 -> "$0.86"`` ("at a $0.86 limit",
    as the posts write a fill)."""
    return money(x)


# ------------------------------------------------------------------ contracts
def strike(x: Any) -> str:
    """``590.0 -> "590"``, ``592.5 -> "592.5"``, ``5000 -> "5000"`` (as option symbols write it)."""
    f = finite(x)
    if f is None:
        return PLACEHOLDER
    neg, text = _body(f, 3, sep=False, trim=True)
    return ("-" if neg else "") + text


def expiry(x: Any) -> str:
    """``"2026-12-03"`` / ``"20261203"`` / a date -> ``"12/03/26"``; anything else: the placeholder."""
    if isinstance(x, datetime):
        return x.strftime("%m/%d/%y")
    if isinstance(x, date):
        return x.strftime("%m/%d/%y")
    raw = str(x if x is not None else "").strip()
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.strptime(raw, fmt).strftime("%m/%d/%y")
        except ValueError:
            continue
    return PLACEHOLDER


def contract_label(symbol: Any, expiry_: Any, strike_: Any, right: Any) -> str:
    """``SPY 12/03/26 590C``. ``symbol`` and ``right`` are shown as given (upper case): a caller
    that shows outside text cleans it first."""
    r = str(right or "").strip().upper()[:1] or "?"
    sym = str(symbol or "").strip().upper() or "?"
    return f"{sym} {expiry(expiry_)} {strike(strike_)}{r}"


# ------------------------------------------------------------------ big numbers, plurals
def compact(x: Any, digits: int = 2) -> str:
    """``1_250_000 -> "1.25M"``, ``-3.4e9 -> "-3.40B"``, below a thousand at most ``digits``
    decimals (``950 -> "950"``, ``0.35 -> "0.35"``); a value that would round up to the next unit
    is shown in it (``999_999 -> "1.00M"``, never ``"1,000.00K"``)."""
    f = finite(x)
    if f is None:
        return PLACEHOLDER
    d = _digits(digits)
    a = abs(f)
    i = max((k for k, (div, _s) in enumerate(_UNITS) if a >= div), default=0)
    if i + 1 < len(_UNITS) and round(a / _UNITS[i][0], d) >= 1000:
        i += 1
    if i == 0:
        return trim(f, d)
    neg, text = _body(f / _UNITS[i][0], d)
    return ("-" if neg else "") + text + _UNITS[i][1]


def compact_money(x: Any, digits: int = 2) -> str:
    """``5_500_000 -> "$5.50M"``, ``-120_000 -> "-$120.00K"``, ``950 -> "$950"``."""
    f = finite(x)
    if f is None:
        return PLACEHOLDER
    body = compact(abs(f), digits)
    return ("-" if f < 0 and body.strip("0.,KMBT") else "") + "$" + body


IRREGULAR = {"was": "were", "is": "are", "has": "have", "entry": "entries", "strategy": "strategies"}


def noun(n: Any, word: str, many: str | None = None) -> str:
    """``word`` or its plural for the count ``n`` (only exactly one is singular; ``many`` for an
    irregular word not in ``IRREGULAR``): the word alone, for a count shown apart."""
    f = finite(n)
    if f is not None and integer(f) == "1":
        return word
    return many or IRREGULAR.get(word) or word + "s"


def plural(n: Any, word: str, many: str | None = None) -> str:
    """``(1, "trade") -> "1 trade"``, ``(6, "trade") -> "6 trades"``, ``(2, "entry") -> "2 entries"``."""
    f = finite(n)
    return f"{PLACEHOLDER if f is None else integer(f)} {noun(n, word, many)}"
