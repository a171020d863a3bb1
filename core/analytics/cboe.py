"""Cboe delayed-quote export (``quotedata.csv``) -> :class:`OptionChain`.

Layout of the file the Cboe delayed-quotes page downloads::

    (blank line)
    <index name>,Last: <spot>,Change: <change>
    "Date: <when>",Bid: ...,Ask: ...,Size: ...,Volume: ...
    Expiration Date,Calls,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest,Strike,Puts,Last Sale,...
    Fri Feb 18 2022,SPX220218C04600000,19.9,-4.75,20.1,20.9,2000,0.1958,0.2386,0.0021,24315,4600.00,SPX...

One line per (expiry, strike): the call's columns before ``Strike``, the put's after, matched
by name. Conventions of the export kept here:

* ``IV`` is a decimal (0.1958 = 19.58 %); ``0`` means the vendor has none (its own solver gave
  up, typically deep in the money) and is read as "no IV" by the analytics, which then solves
  one (:mod:`core.analytics.volatility`). ``Delta``/``Gamma`` are the vendor's and are kept as
  given, except that a row whose IV, delta and gamma are all ``0`` has no vendor greeks (NaN).
* ``Last Sale`` becomes ``last`` (0 = no trade: NaN); bid/ask 0 are kept (an empty book).
* ``Date:`` is New York time (``EST``/``EDT``) or ``UTC±h``; formats seen in exports:
  ``February 5 2022, 8:09 PM EST``, ``January 6, 2025 at 8:57 PM EST``, ``5 April 2023, 19:41 UTC-4``.
* No rate or dividend yield is stated: the configured defaults apply.

Malformed data lines are skipped and counted; a file without the header or the spot/date lines
raises :class:`CboeFormatError` (one line).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo

import numpy as np

from core.analytics.expiry_time import NEW_YORK
from core.market.chain import OptionChain

__all__ = ["CboeFormatError", "parse_cboe_csv", "parse_quote_time"]

_FIELDS = ("Last Sale", "Bid", "Ask", "Volume", "IV", "Delta", "Gamma", "Open Interest")
_DATE_FORMATS = ("%B %d %Y %I:%M %p", "%B %d %Y %H:%M", "%d %B %Y %H:%M", "%d %B %Y %I:%M %p")


class CboeFormatError(ValueError):
    """The text is not a Cboe quotedata export. ``str(err)`` is one line."""


def parse_quote_time(text: str) -> datetime:
    """``Date: ...`` of an export -> aware datetime (New York unless a ``UTC±h`` offset is given)."""
    s = text.strip().strip('"')
    s = re.sub(r"^Date:\s*", "", s)
    m = re.search(r"\s*(EST|EDT|ET|UTC\s*[+\-\u2212]\s*\d{1,2}(?::?\d{2})?)\s*$", s)
    tz: tzinfo = NEW_YORK
    if m:
        zone = m.group(1).replace("\u2212", "-").replace(" ", "")
        s = s[: m.start()]
        if zone.startswith("UTC"):
            sign = -1 if zone[3] == "-" else 1
            hh, _, mm = zone[4:].partition(":")
            tz = timezone(sign * timedelta(hours=int(hh[:2]), minutes=int(mm or hh[2:] or 0)))
    s = re.sub(r"\s+at\s+", " ", s.replace(",", " "))
    s = " ".join(s.split())
    for fmt in _DATE_FORMATS:
        try:
            naive = datetime.strptime(s, fmt)
        except ValueError:
            continue
        return naive.replace(tzinfo=tz).astimezone(UTC)
    raise CboeFormatError(f"unrecognised quote time {text.strip()[:60]!r}")


def _number(text: str) -> float:
    try:
        return float(text.replace(",", "").strip())
    except ValueError:
        return float("nan")


def _header(lines: list[list[str]]) -> tuple[int, dict[str, int], dict[str, int], int]:
    """(row index, call column by name, put column by name, strike column)."""
    for i, row in enumerate(lines[:10]):
        cells = [c.strip() for c in row]
        if cells and cells[0] == "Expiration Date" and "Strike" in cells:
            k = cells.index("Strike")
            calls = {name: j for j, name in enumerate(cells[:k]) if name in _FIELDS}
            puts = {name: k + 1 + j for j, name in enumerate(cells[k + 1:]) if name in _FIELDS}
            missing = [f for f in ("Open Interest",) if f not in calls or f not in puts]
            if missing:
                raise CboeFormatError(f"header lacks {', '.join(missing)}")
            return i, calls, puts, k
    raise CboeFormatError("no 'Expiration Date,...,Strike,...' header in the first 10 lines")


def _spot_and_time(lines: list[list[str]], header_at: int) -> tuple[float, datetime]:
    spot = when = None
    for row in lines[:header_at]:
        for cell in row:
            c = cell.strip()
            if c.startswith("Last:"):
                spot = _number(c[5:])
            elif c.startswith("Date:"):
                when = parse_quote_time(c)
    if spot is None or not np.isfinite(spot) or spot <= 0:
        raise CboeFormatError("no positive 'Last: <spot>' before the header")
    if when is None:
        raise CboeFormatError("no 'Date: <time>' before the header")
    return spot, when


def parse_cboe_csv(text: str, symbol: str = "SPX") -> tuple[OptionChain, int]:
    """Parse an export. Returns ``(chain, skipped_lines)``; ``chain.asof`` is the quote time."""
    lines = list(csv.reader(io.StringIO(text)))
    at, calls, puts, k = _header(lines)
    spot, asof = _spot_and_time(lines, at)
    cols: dict[str, list[float]] = {f: [] for f in (*_FIELDS, "strike")}
    expiry: list[np.datetime64] = []
    is_call: list[bool] = []
    skipped = 0
    for row in lines[at + 1:]:
        if not row or not "".join(row).strip():
            continue
        try:
            exp = np.datetime64(datetime.strptime(row[0].strip(), "%a %b %d %Y").date(), "D")
            strike = _number(row[k])
            sides = [(True, [_number(row[calls[f]]) if f in calls else float("nan") for f in _FIELDS]),
                     (False, [_number(row[puts[f]]) if f in puts else float("nan") for f in _FIELDS])]
        except (ValueError, IndexError):
            skipped += 1
            continue
        for call, vals in sides:
            expiry.append(exp)
            is_call.append(call)
            cols["strike"].append(strike)
            for f, v in zip(_FIELDS, vals, strict=True):
                cols[f].append(v)
    a = {f: np.asarray(v, dtype=np.float64) for f, v in cols.items()}
    iv, delta, gamma = a["IV"], a["Delta"], a["Gamma"]
    no_greeks = (iv == 0.0) & (delta == 0.0) & (gamma == 0.0)
    chain = OptionChain(
        symbol=symbol, spot=float(spot), asof=asof, expiry=np.asarray(expiry, dtype="datetime64[D]"),
        strike=a["strike"], is_call=np.asarray(is_call, dtype=bool), bid=a["Bid"], ask=a["Ask"], iv=iv,
        open_interest=a["Open Interest"], volume=np.nan_to_num(a["Volume"]),
        delta=np.where(no_greeks, np.nan, delta), gamma=np.where(no_greeks, np.nan, gamma),
        last=np.where(a["Last Sale"] > 0.0, a["Last Sale"], np.nan),
        meta={"source": "cboe_csv"},
    )
    return chain, skipped
