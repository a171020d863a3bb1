"""Write ``spx_quotedata_sample.csv``: a small chain in the Cboe delayed-quote export layout.

Synthetic (seeded, reproducible: ``python tests/data/make_cboe_sample.py``), modelled on what
real SPX exports contain (see README.md beside this file): vendor IV/delta/gamma printed to 4
decimals, in-the-money rows whose IV is printed ``0`` while delta, gamma, a live bid and large
open interest are printed (some of them with a mid below the zero-volatility value), an
expiry already past at the quote time (quoted after the 16:00 close), empty books with a last
sale, far out-of-the-money rows bid at 0.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
from scipy.special import ndtr

SPOT = 5975.3799
QUOTED = "January 6, 2025 at 8:57 PM EST"
ASOF = datetime(2025, 1, 7, 1, 57)  # UTC
EXPIRIES = [date(2025, 1, 6), date(2025, 1, 7), date(2025, 1, 8), date(2025, 1, 10), date(2025, 1, 17),
            date(2025, 1, 31), date(2025, 2, 21), date(2025, 3, 21)]
R, Q = 0.045, 0.0
HEADER = ("Expiration Date,Calls,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest,Strike,"
          "Puts,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest")


def _bs(S, K, T, sig, call):
    d1 = (np.log(S / K) + (R - Q + 0.5 * sig * sig) * T) / (sig * np.sqrt(T))
    d2 = d1 - sig * np.sqrt(T)
    c = S * np.exp(-Q * T) * ndtr(d1) - K * np.exp(-R * T) * ndtr(d2)
    p = K * np.exp(-R * T) * ndtr(-d2) - S * np.exp(-Q * T) * ndtr(-d1)
    delta = np.where(call, ndtr(d1), ndtr(d1) - 1.0) * np.exp(-Q * T)
    gamma = np.exp(-Q * T) * np.exp(-0.5 * d1 * d1) / np.sqrt(2 * np.pi) / (S * sig * np.sqrt(T))
    return np.where(call, c, p), delta, gamma


def _tick(x: float, up: bool) -> float:
    t = 0.05 if x < 3.0 else 0.10
    v = np.ceil(x / t - 1e-9) * t if up else np.floor(x / t + 1e-9) * t
    return round(max(float(v), 0.0), 2)


def _side(rng, K, exp, call, expired):
    """The 9 printed fields of one side: last, net, bid, ask, volume, IV, delta, gamma, OI."""
    oi = int(rng.lognormal(6.5, 1.4) * np.exp(-8.0 * np.log(K / SPOT) ** 2))
    if expired:
        return [0, 0, 0, 0, 0, 0, 0, 0, oi]
    T = ((datetime(exp.year, exp.month, exp.day, 21) - ASOF).total_seconds() / 60.0) / 525600.0
    m = np.log(K / SPOT)
    sig = max(0.16 - 0.9 * m + 6.0 * m * m / max(T * 12, 0.3), 0.08)
    price, delta, gamma = (float(v) for v in _bs(SPOT, K, T, sig, call))
    itm = (K < SPOT) if call else (K > SPOT)
    width = max(0.1, 0.02 * price)
    bid, ask = _tick(price - width / 2, False), _tick(price + width / 2, True)
    iv = round(sig, 4)
    if itm and rng.random() < 0.35:                    # the vendor prints IV 0 deep ITM
        iv = 0.0
        if rng.random() < 0.4:                          # ... and the book sits at intrinsic
            intrinsic = abs(SPOT - K * np.exp(-R * T))
            bid, ask = _tick(intrinsic - 3.0, False), _tick(intrinsic - 0.5, True)
    if not itm and abs(m) > 0.06:
        bid = 0.0                                       # far OTM: bid 0
    last = _tick(price * (1 + rng.normal(0, 0.03)), True) if rng.random() < 0.7 else 0.0
    if itm and iv == 0.0 and rng.random() < 0.2:
        bid = ask = 0.0                                 # empty book, last sale only
        last = last or _tick(price, True)
    vol = int(rng.poisson(40) * (last > 0))
    net = round(float(rng.normal(0, 2)), 2) if last else 0
    return [last, net, bid, ask, vol, iv, round(delta, 4), round(gamma, 4), oi]


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def build(seed: int = 20250106) -> str:
    rng = np.random.default_rng(seed)
    out = ["", f"SP 500 INDEX,Last: {SPOT},Change:  32.9099",
           f'"Date: {QUOTED}",Bid: 5934.4302,Ask: 6032.4502,Size: 1*1,Volume: 0', HEADER]
    for exp in EXPIRIES:
        expired = exp <= date(2025, 1, 6)
        step = 25 if exp > date(2025, 1, 17) else 10
        for K in np.arange(5600, 6351, step * (2 if exp > date(2025, 1, 17) else 3), dtype=float):
            code = f"{exp:%y%m%d}"
            c = _side(rng, K, exp, True, expired)
            p = _side(rng, K, exp, False, expired)
            out.append(",".join([f"{exp:%a %b %d %Y}", f"SPXW{code}C{int(K * 1000):08d}", *map(_fmt, c),
                                 f"{K:.2f}", f"SPXW{code}P{int(K * 1000):08d}", *map(_fmt, p)]))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    path = Path(__file__).with_name("spx_quotedata_sample.csv")
    path.write_text(build(), encoding="utf-8")
    print(f"wrote {path}")
