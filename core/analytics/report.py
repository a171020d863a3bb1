"""CHAIN.json -> exposure summary: the analytics CLI contract.

Input (a parsed JSON object)::

    {"symbol": str, "spot": number > 0, "asof": ISO 8601 string WITH offset,
     "rate"?: number, "dividend_yield"?: number,
     "contracts": [{"expiry": "YYYY-MM-DD", "strike": n, "right": "C"|"P", "open_interest": n,
                    "bid"?: n, "ask"?: n, "last"?: n, "iv"?: n,
                    "volume"?: n, "delta"?: n, "gamma"?: n}, ...]}

Output::

    {"symbol", "spot", "gex_total", "dex_total", "gex_by_strike": {"<strike>": value},
     "call_wall", "put_wall", "zero_gamma", "max_pain": {"<expiry>": strike},
     "contracts_used", "contracts_rejected", "rate", "dividend_yield",
     "validation": {"rate", "rate_source", "dividend_yield", "dividend_yield_source",
                    "used": {use: rows}, "rejected": {use: {reason: rows}},
                    "iv": {"vendor", "solved_mid", "solved_last", "unsolved": {reason: rows}}}}

Rows are validated per use (:mod:`core.analytics.chain_analysis`, the same code as the
analytics service): ``contracts_used`` counts the rows at least one use counted,
``contracts_rejected`` the malformed rows plus the rows no use could take.

* A malformed top level (not an object; missing/ill-typed symbol, spot, asof or
  contracts; non-finite or non-positive spot; asof without a UTC offset; ill-typed
  rate/dividend_yield) raises :class:`ChainFileError` with a one-line message.
* A bad contract row never raises: structurally malformed rows (not an object,
  missing or ill-typed fields, unknown right, bad expiry) are rejected by
  :func:`chain_from_rows`; rows with bad values (NaN, negative, crossed, expired...)
  by :func:`core.analytics.validate.clean_chain`. ``contracts_rejected`` is the sum.
* ``rate``/``dividend_yield`` absent or null -> the ``rate`` (default 0.045) /
  ``dividend_yield`` (default 0.0) arguments of :func:`analyze_chain_json`.
* Strike keys are ``f"{strike:g}"`` (strikes that format alike are summed);
  expiry keys are ISO dates. ``call_wall``/``put_wall``/``zero_gamma`` may be null.
  Numbers are plain floats (GEX in dollars per 1% move, DEX in dollars).

:func:`analyze_chain_file` and :func:`main` are the only I/O (``python -m core.analytics.report CHAIN.json``).
"""

from __future__ import annotations

import json
import math
import re
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from core.analytics.cboe import CboeFormatError, parse_cboe_csv
from core.analytics.chain_analysis import AnalysisSettings, ChainAnalysis, analyze_chain
from core.market.chain import OptionChain

__all__ = [
    "DEFAULT_DIVIDEND_YIELD",
    "DEFAULT_RATE",
    "ChainFileError",
    "analyze_cboe_text",
    "analyze_chain_file",
    "analyze_chain_json",
    "chain_from_rows",
    "main",
    "parse_asof",
    "summarize",
]

DEFAULT_RATE = 0.045
DEFAULT_DIVIDEND_YIELD = 0.0
_REQUIRED_NUMBERS = ("strike", "open_interest")
_OPTIONAL_NUMBERS = ("bid", "ask", "iv", "volume", "delta", "gamma", "last")  # absent: NaN (volume 0)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ChainFileError(Exception):
    """The chain file's top-level structure is unusable. ``str(err)`` is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


def _short(value: object, limit: int = 60) -> str:
    """repr() cut to ``limit`` characters for one-line error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _to_float(x: object) -> float | None:
    """JSON number -> float; None for non-numbers (bools, strings, ...) and ints too big for a float."""
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return None
    try:
        return float(x)
    except OverflowError:
        return None


def parse_asof(value: object) -> datetime:
    """ISO 8601 timestamp with an explicit offset (``Z`` allowed) -> aware datetime."""
    if not isinstance(value, str):
        raise ChainFileError(f"'asof' must be an ISO 8601 string, got {type(value).__name__}")
    try:
        ts = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ChainFileError(f"'asof' is not ISO 8601: {_short(value)}") from None
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ChainFileError(f"'asof' must include a UTC offset (e.g. +00:00 or Z): {_short(value)}")
    return ts


def _parse_row(row: object) -> tuple[np.datetime64, float, bool, list[float]] | None:
    """(expiry, strike, is_call, [oi, bid, ask, iv, volume, delta, gamma, last]) or None if malformed."""
    if not isinstance(row, dict):
        return None
    exp = row.get("expiry")
    if not isinstance(exp, str) or not _DATE_RE.match(exp):
        return None
    try:
        exp_d = date.fromisoformat(exp)
    except ValueError:
        return None
    right = row.get("right")
    if not isinstance(right, str) or right.strip().upper() not in ("C", "P"):
        return None
    values: list[float] = []
    for name in _REQUIRED_NUMBERS:
        f = _to_float(row.get(name))
        if f is None:
            return None
        values.append(f)
    for name in _OPTIONAL_NUMBERS:
        v = row.get(name)
        if v is None:
            values.append(0.0 if name == "volume" else math.nan)
            continue
        f = _to_float(v)
        if f is None:
            return None
        values.append(f)
    strike = values.pop(0)
    return np.datetime64(exp_d, "D"), strike, right.strip().upper() == "C", values


def chain_from_rows(symbol: str, spot: float, asof: datetime, rows: list[Any]) -> tuple[OptionChain, int]:
    """Build an :class:`OptionChain` from CHAIN.json contract rows (structural parse only).

    Rows that are not objects, miss a required field (expiry, strike, right,
    open_interest), have a non-number where a number belongs, an unknown right or
    a non ``YYYY-MM-DD`` expiry are dropped and counted. Values are NOT checked here
    (NaN, negatives, crossed or expired rows pass through): analytics validates them
    per use. Absent ``volume`` is 0; absent bid/ask/last/iv/delta/gamma are NaN.

    Returns:
        ``(chain, rejected_count)``.
    """
    parsed = [p for p in (_parse_row(r) for r in rows) if p is not None]
    rejected = len(rows) - len(parsed)
    if not parsed:
        return OptionChain.empty(symbol, float(spot), asof), rejected
    expiry = np.array([p[0] for p in parsed], dtype="datetime64[D]")
    strike = np.array([p[1] for p in parsed], dtype=np.float64)
    is_call = np.array([p[2] for p in parsed], dtype=bool)
    vals = np.array([p[3] for p in parsed], dtype=np.float64)
    chain = OptionChain(
        symbol=symbol, spot=float(spot), asof=asof, expiry=expiry, strike=strike, is_call=is_call,
        open_interest=vals[:, 0].copy(), bid=vals[:, 1].copy(), ask=vals[:, 2].copy(), iv=vals[:, 3].copy(),
        volume=vals[:, 4].copy(), delta=vals[:, 5].copy(), gamma=vals[:, 6].copy(), last=vals[:, 7].copy(),
    )
    return chain, rejected


def _optional_number(obj: dict[str, Any], name: str) -> float | None:
    v = obj.get(name)
    if v is None:
        return None
    f = _to_float(v)
    if f is None or not math.isfinite(f):
        raise ChainFileError(f"'{name}' must be a finite number when present, got {_short(v)}")
    return f


def _strike_key(strike: float) -> str:
    return f"{strike:g}"


def analyze_chain_json(
    obj: dict[str, Any],
    rate: float = DEFAULT_RATE,
    dividend_yield: float = DEFAULT_DIVIDEND_YIELD,
    grid_levels: int = 200,
    *,
    flip_range_pct: float = 20.0,
    min_minutes_to_expiry: float = 5.0,
) -> dict[str, Any]:
    """Apply the CHAIN.json contract (module docstring) to a parsed JSON object.

    Args:
        obj: the parsed CHAIN.json.
        rate: rate used when the file has no ``rate`` (or it is null); default 0.045.
        dividend_yield: yield used when the file has no ``dividend_yield``; default 0.0.
        grid_levels: spot levels of the zero-gamma grid.
        flip_range_pct: the zero-gamma grid spans spot +- this percent (``analytics.flip_range_pct``).
        min_minutes_to_expiry: floor on time to expiry (``analytics.min_minutes_to_expiry``).

    Raises:
        ChainFileError: malformed top-level structure (one-line message).
    """
    if not isinstance(obj, dict):
        raise ChainFileError(f"chain must be a JSON object, got {type(obj).__name__}")
    for name in ("symbol", "spot", "asof", "contracts"):
        if name not in obj:
            raise ChainFileError(f"missing required field '{name}'")
    symbol = obj["symbol"]
    if not isinstance(symbol, str) or not symbol.strip():
        raise ChainFileError("'symbol' must be a non-empty string")
    spot = _to_float(obj["spot"])
    if spot is None or not math.isfinite(spot) or spot <= 0:
        raise ChainFileError(f"'spot' must be a positive finite number, got {_short(obj['spot'])}")
    asof = parse_asof(obj["asof"])
    rows = obj["contracts"]
    if not isinstance(rows, list):
        raise ChainFileError(f"'contracts' must be a list, got {type(rows).__name__}")
    file_rate = _optional_number(obj, "rate")
    file_dividend_yield = _optional_number(obj, "dividend_yield")

    raw, malformed = chain_from_rows(symbol.strip(), spot, asof, rows)
    raw.rate = file_rate                      # a stated value overrides the defaults
    raw.dividend_yield = file_dividend_yield
    cfg = AnalysisSettings(rate=rate, dividend_yield=dividend_yield, grid_levels=grid_levels,
                           flip_range_pct=flip_range_pct, min_minutes_to_expiry=min_minutes_to_expiry)
    return summarize(analyze_chain(raw, asof, cfg), malformed)


def summarize(an: ChainAnalysis, malformed: int = 0) -> dict[str, Any]:
    """The output object (module docstring) of one :class:`ChainAnalysis`."""
    res = an.exposure
    by_strike: dict[str, float] = {}
    for k, v in zip(res.strikes.tolist(), res.gex_by_strike.tolist(), strict=True):
        key = _strike_key(k)
        by_strike[key] = by_strike.get(key, 0.0) + float(v)
    return {
        "symbol": an.chain.symbol,
        "spot": float(an.chain.spot),
        "gex_total": res.gex_total,
        "dex_total": res.dex_total,
        "gex_by_strike": by_strike,
        "call_wall": res.call_wall,
        "put_wall": res.put_wall,
        "zero_gamma": res.zero_gamma,
        "max_pain": {d.isoformat(): float(k) for d, k in res.max_pain.items()},
        "contracts_used": an.rows_used,
        "contracts_rejected": malformed + an.rows_rejected,
        "rate": res.rate,
        "dividend_yield": res.dividend_yield,
        "validation": an.summary(),
    }


def analyze_cboe_text(
    text: str, rate: float = DEFAULT_RATE, dividend_yield: float = DEFAULT_DIVIDEND_YIELD, grid_levels: int = 200,
    *, flip_range_pct: float = 20.0, min_minutes_to_expiry: float = 5.0,
) -> dict[str, Any]:
    """The same summary for a Cboe delayed-quote export (:mod:`core.analytics.cboe`), valued at its quote time.

    Raises:
        ChainFileError: the text is not such an export (one-line message).
    """
    try:
        chain, skipped = parse_cboe_csv(text)
    except CboeFormatError as exc:
        raise ChainFileError(f"not a Cboe quotedata export: {exc}") from None
    cfg = AnalysisSettings(rate=rate, dividend_yield=dividend_yield, grid_levels=grid_levels,
                           flip_range_pct=flip_range_pct, min_minutes_to_expiry=min_minutes_to_expiry)
    return summarize(analyze_chain(chain, chain.asof, cfg), skipped)


def analyze_chain_file(path: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Read a CHAIN.json file and apply :func:`analyze_chain_json` (kwargs passed on).

    Raises:
        ChainFileError: unreadable file, invalid JSON, or malformed top level.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ChainFileError(f"cannot read chain file {str(path)!r}: {exc}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ChainFileError(f"invalid JSON in {str(path)!r}: {exc.msg} (line {exc.lineno})") from None
    return analyze_chain_json(obj, **kwargs)


def main(argv: list[str] | None = None) -> int:
    """``python -m core.analytics.report CHAIN.json``: print the summary JSON.

    Exit code 0 on success, 2 on a :class:`ChainFileError` (message on stderr).
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m core.analytics.report CHAIN.json", file=sys.stderr)
        return 2
    try:
        out = analyze_chain_file(args[0])
    except ChainFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
