"""Deterministic market simulator: seeded, pure (no I/O, no wall clock, no Redis).

Usage::

    from datetime import datetime
    from core.market.sim import NY, MarketSimulator

    sim = MarketSimulator(seed=7, session_open=datetime(2025, 12, 2, 8, 30, tzinfo=NY),
                          session_close=datetime(2025, 12, 2, 16, 15, tzinfo=NY))
    sim.advance(datetime(2025, 12, 2, 10, 0, tzinfo=NY))     # every tick of the service
    sim.quote("SPY"); sim.depth("SPY"); sim.chain("SPY")
    sim.prints("SPY"); sim.option_flow("SPY"); sim.net_premium("SPY")
    sim.closing_imbalance("SPY")                              # None before 15:50

Every result has ``to_dict()`` (JSON-ready: ISO datetimes, lists) for the bus.

API (inputs must be timezone-aware; every output datetime is America/New_York)

``MarketSimulator(seed, session_open, session_close, symbols=None, config=None)``
    One session. The NY date of ``session_open`` must be an XNYS session (else
    ``ValueError``); regular hours come from ``exchange_calendars`` (13:00 early
    closes respected). ``symbols`` defaults to SPY QQQ IWM SPX AAPL MSFT GOOGL AMZN
    NVDA META TSLA. Attributes: ``now``, ``trade_date``, ``rth_open``, ``rth_close``,
    ``symbols``, ``seed``, ``config``.
``advance(to)``
    Set the clock. Monotone (equal is fine, earlier raises ``ValueError``). Paths
    and event tapes are generated up front on a 1-second grid, so outputs depend on
    the seed and the time asked only, never on how ``advance`` was stepped. Past
    ``session_close`` the state stays at the last grid second.
``quote(symbol) -> UnderlyingQuote``
    symbol, ts (= now), bid, ask, last, bid_size, ask_size, volume_today,
    prev_close, stale. SPX is an index: synthetic bid/ask around the level, last =
    level, volume 0.
``depth(symbol, levels=10) -> DepthBook``
    symbol, ts, bid_price / bid_size / ask_price / ask_size numpy arrays (best
    first, level 0 = the quote), stale; ``imbalance`` property in [-1, 1]. Sizes
    lean with short-term order-flow pressure (imbalance leads the next ~30 s move).
``prints(symbol) -> list[TradePrint]``
    Tape prints with ts <= now not returned before: symbol, ts, price, size, side
    (buy = at ask / sell = at bid / mid), exchange (NYSE NASDAQ ARCA BATS EDGX IEX
    MEMX, TRF = off-exchange), kind (odd_lot, round_lot, block >= 10k on TRF,
    sweep), sweep_id (legs of one sweep: same id, side, distinct venues, walking
    the book). A representative sample of the tape; ``volume_today`` is the full
    consolidated volume and includes them. Empty for SPX.
``option_flow(symbol) -> list[FlowAlert]``
    Unusual-Whales-like alerts (notable option trades) not returned before:
    symbol, ts, contract (OCC), expiry, strike, right C/P, side ask/bid/mid,
    is_sweep, size, price, premium (= price*size*100), bid, ask, underlying_price,
    iv, open_interest, volume (contract volume incl. this trade), exchanges,
    alert_rule (Sweep, Block, LargePremium, VolOverOI); ``bullish`` property.
``net_premium(symbol) -> list[NetPremiumTick]``
    One tick per regular-hours minute completed since the previous call (ts =
    minute end): call/put volume and premium, net_call_premium / net_put_premium
    (ask-side minus bid-side), net call/put volume, cumulative nets; property
    ``net_premium`` = net calls - net puts.
``chain(symbol) -> core.market.chain.OptionChain``
    Full chain now: 0DTE and 1DTE (SPY QQQ IWM SPX), the next weekly Friday, three
    expiries 14-45 DTE (third Fridays first); strikes by 1 (SPY QQQ IWM, coarser
    by 5 away from spot), 5 (SPX, 50 away), 2.5 / 5 (stocks under / over $250),
    about +-8-10% (indices) or vol-scaled (stocks), listed around the previous
    close. Mids are ``core.analytics.black_scholes.bs_price`` with a put skew, term
    structure and spot-vol effect; quotes on 0.01 ticks below 3.00 and 0.05 above,
    wider for cheap and far contracts; seeded open interest peaking at round strikes
    near spot; cumulative volume; delta, gamma. ``iv`` is the ACT/365 vol to 16:00
    NY (or the early close) on the expiry date: ``bs_price(spot, K, (close - asof)
    / 365 days, rate, dividend_yield, iv)`` reproduces the mid. Expiries whose
    close has passed are dropped. ``meta["expiry_kinds"]`` maps each expiry to
    0dte / 1dte / weekly / monthly. ``layout(symbol)`` gives the static layout.
``row_quotes(symbol, rows) -> (spot, live_rows, Priced)``
    Prices only the given ``layout`` rows now, exactly as ``chain`` prices them (the market
    source's watched-contract quotes); rows of a closed expiry are dropped.
``closing_imbalance(symbol) -> ClosingImbalance | None``
    From 10 minutes before the close (15:50 NY) until the close, updated every
    second: symbol, ts, side buy/sell, imbalance_shares, paired_shares,
    indicative_price, reference_price, confidence (0..1, rising), auction_time.
    None outside that window and for SPX. The price drifts towards the side.
``inject_gap(symbol, start, end)``
    Feed gap: for ``start <= now < end`` ``quote``/``depth`` return the state at
    ``start`` with ``ts == start`` and ``stale=True`` (``SimConfig(gap_mode=
    "raise")``: raise ``FeedGapError``). Other symbols and feeds are unaffected;
    from ``end`` on everything is live again. ``in_gap(symbol)`` tells.
``spot(symbol)`` the true current mid (ignores gaps).

Model: a shared market factor (correlation 0.86-0.998 for the index products) plus
idiosyncratic noise; U-shaped intraday variance (open spike, close bump, quiet
extended hours); seeded trend regimes; occasional jumps; a seeded vol-of-the-day.
Streams are seeded per (seed, trade date, symbol, purpose), so a symbol's outputs
do not depend on which other symbols are simulated. Prints, book pressure, option
flow, chain volumes and the closing auction all derive from the same path: e.g. a
bullish regime shows more calls bought at the ask, puts sold at the bid, positive
net premium. Cost: a full 08:30-16:15 day with quote() for 11 symbols every 10 s
and chain() for each every 60 s takes about 2-3 s of CPU (``tests/market/bench_sim.py``).
"""

from core.market.sim.calendar import NY
from core.market.sim.config import DEFAULT_SPECS, DEFAULT_SYMBOLS, SimConfig, SymbolSpec
from core.market.sim.models import (
    ClosingImbalance,
    DepthBook,
    FeedGapError,
    FlowAlert,
    NetPremiumTick,
    TradePrint,
    UnderlyingQuote,
)
from core.market.sim.simulator import MarketSimulator

__all__ = [
    "DEFAULT_SPECS",
    "DEFAULT_SYMBOLS",
    "NY",
    "ClosingImbalance",
    "DepthBook",
    "FeedGapError",
    "FlowAlert",
    "MarketSimulator",
    "NetPremiumTick",
    "SimConfig",
    "SymbolSpec",
    "TradePrint",
    "UnderlyingQuote",
]
