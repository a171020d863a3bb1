"""OptionChain <-> text, for the latest-chain snapshot key in Redis.

A small JSON header plus each numeric column as base64 of its little-endian
float64 bytes: exact (NaN vendor greeks survive as NaN), and about 30x faster
to encode/decode than per-element JSON for a few hundred to thousands of rows.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime

import numpy as np

from core.market.chain import OptionChain

_FLOAT_COLS = ("strike", "bid", "ask", "iv", "open_interest", "volume", "delta", "gamma")


def _b64(a: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode("ascii")


def _arr(text: str, dtype: str, n: int) -> np.ndarray:
    out = np.frombuffer(base64.b64decode(text), dtype=dtype)
    if out.shape[0] != n:
        raise ValueError(f"column length {out.shape[0]} != {n}")
    return out.copy()


def encode_chain(chain: OptionChain) -> str:
    body: dict[str, object] = {
        "v": 1, "symbol": chain.symbol, "spot": chain.spot, "asof": chain.asof.isoformat(), "n": len(chain),
        "rate": chain.rate, "dividend_yield": chain.dividend_yield,
        "expiry": _b64(chain.expiry.astype("datetime64[D]").astype(np.int64), "<i8"),
        "is_call": _b64(chain.is_call.astype(np.int8), "<i1"),
    }
    for col in _FLOAT_COLS:
        body[col] = _b64(getattr(chain, col), "<f8")
    return json.dumps(body, separators=(",", ":"))


def decode_chain(text: str) -> OptionChain:
    """Raises ValueError / KeyError / TypeError on a malformed snapshot."""
    body = json.loads(text)
    n = int(body["n"])
    cols = {c: _arr(body[c], "<f8", n) for c in _FLOAT_COLS}
    return OptionChain(
        symbol=str(body["symbol"]), spot=float(body["spot"]), asof=datetime.fromisoformat(body["asof"]),
        expiry=_arr(body["expiry"], "<i8", n).astype("datetime64[D]"),
        is_call=_arr(body["is_call"], "<i1", n).astype(bool),
        rate=body.get("rate"), dividend_yield=body.get("dividend_yield"), **cols,
    )
