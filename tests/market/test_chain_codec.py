"""The chain snapshot codec: the encoded text is exactly what ``json.dumps`` of the body gave
(readers and stored snapshots see no change), decoding is exact, and every decode gets its own
arrays (one reader changing its chain never changes another's)."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import numpy as np
import pytest
from sim_helpers import at, make_sim

from core.market.chain import OptionChain
from core.market.chain_codec import decode_chain, encode_chain

_COLS = ("expiry", "strike", "is_call", "bid", "ask", "iv", "open_interest", "volume", "delta", "gamma")


def _reference(chain: OptionChain) -> str:
    """The encoder before issue 12: a dict through json.dumps."""
    def b64(a, dtype):
        return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode("ascii")

    body = {"v": 1, "symbol": chain.symbol, "spot": chain.spot, "asof": chain.asof.isoformat(), "n": len(chain),
            "rate": chain.rate, "dividend_yield": chain.dividend_yield,
            "expiry": b64(chain.expiry.astype("datetime64[D]").astype(np.int64), "<i8"),
            "is_call": b64(chain.is_call.astype(np.int8), "<i1")}
    for col in ("strike", "bid", "ask", "iv", "open_interest", "volume", "delta", "gamma"):
        body[col] = b64(getattr(chain, col), "<f8")
    return json.dumps(body, separators=(",", ":"))


def _chains() -> list[OptionChain]:
    sim = make_sim(seed=5, symbols=["SPY", "SPX", "AAPL"])
    out = []
    for t in (at(8, 30), at(11, 7), at(15, 59)):
        sim.advance(t)
        out += [sim.chain(s) for s in sim.symbols]
    vendor = out[1]
    n = len(vendor)
    out.append(replace(vendor, delta=np.full(n, np.nan), gamma=np.where(np.arange(n) % 2, np.nan, vendor.gamma),
                       rate=None, dividend_yield=0.013, symbol='we"ird\\'))
    out.append(OptionChain.empty("QQQ", 512.25, vendor.asof))
    return out


def _same(a: OptionChain, b: OptionChain) -> bool:
    return (a.symbol, a.spot, a.asof, a.rate, a.dividend_yield) == (b.symbol, b.spot, b.asof, b.rate, b.dividend_yield) \
        and all(np.array_equal(getattr(a, c), getattr(b, c), equal_nan=c not in ("expiry", "is_call")) for c in _COLS)


def test_encoded_text_is_what_json_dumps_gave_and_decodes_exactly():
    for chain in _chains():
        text = encode_chain(chain)
        assert text == _reference(chain)
        assert _same(decode_chain(text), chain)


def test_every_decode_gets_its_own_arrays():
    text = encode_chain(_chains()[0])
    first = decode_chain(text)
    first.bid[:] = -1.0
    first.strike.sort()
    again = decode_chain(bytes(text, "ascii").decode())  # an equal text, another object (a new GET)
    assert again.bid is not first.bid and np.all(again.bid >= 0)
    assert _same(again, _chains()[0])


def test_a_malformed_snapshot_raises_and_is_not_remembered():
    good = encode_chain(_chains()[0])
    body = json.loads(good)
    for bad in (good[:-40], json.dumps({**body, "n": body["n"] + 1}), json.dumps({**body, "bid": "@@@"}),
                json.dumps({k: v for k, v in body.items() if k != "strike"})):
        with pytest.raises((ValueError, KeyError, TypeError)):
            decode_chain(bad)

