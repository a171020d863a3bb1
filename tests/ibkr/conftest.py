"""IBKR test fixtures: a started fake TWS with SPY / QQQ and their option chains, settings pointing at
it, and a service Context on the real Redis (db 15, a fresh key prefix per test).

- ``tws``: :class:`~tests.fakes.ib_tws.FakeTWS` built by :func:`build_tws` (SPY 590, QQQ 510;
  options expiring today (0DTE), the next two sessions and one far date beyond ``chain_max_dte``;
  every option quoted with iv / delta / gamma / open interest / volume), stopped after the test.
- ``ib_settings``: :func:`make_ib_settings` for the fake's port (dry-run, ``market.source: ibkr``,
  fast reconnects, small chains). Pass overrides with ``make_ib_settings(port, ibkr={...})``.
- ``ib_ctx``: :func:`make_ib_context` on the shared ``bus`` fixture (SimClock at 09:30 New York on
  :data:`TODAY`; advance ``ib_ctx.clock`` to age data).
- ``until(cond)``: poll on the test's loop (ib_async needs the loop to run).
- ``no_decoder_errors``: fails a test when ib_async could not decode what the fake sent.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

import pytest

from core.bus.bus import Bus
from core.bus.events import Event, decode
from core.clock.calendar import NyseCalendar
from core.config.model import Settings
from core.runtime.service import Context
from tests.fakes.ib_tws import FakeTWS
from tests.helpers import make_context, until, until_async  # noqa: F401 - re-exported for tests/ibkr

TODAY = date(2026, 11, 20)  # the New York day of tests/conftest.py's sim_clock (a Friday session)
ACCOUNT = "DU1234567"
SPY_SPOT, QQQ_SPOT = 590.0, 510.0
SPY_STRIKES = [float(k) for k in range(584, 597)]
QQQ_STRIKES = [float(k) for k in range(504, 517)]


def session_days(n: int, start: date = TODAY) -> list[date]:
    cal = NyseCalendar()
    days = [start]
    while len(days) < n:
        days.append(cal.next_session(days[-1]))
    return days


EXPIRIES = session_days(3)  # 0DTE, 1DTE, 2DTE
FAR_EXPIRY = TODAY + timedelta(days=70)  # beyond chain_max_dte (45)


def option_values(spot: float, expiry: date, strike: float, right: str) -> dict[str, Any]:
    """A toy but consistent quote: intrinsic + time value, greeks and OI by distance from spot."""
    days = max((expiry - TODAY).days, 0) + 1
    intrinsic = max(spot - strike, 0.0) if right == "C" else max(strike - spot, 0.0)
    mid = round(intrinsic + 0.4 * days ** 0.5 + max(0.0, 3.0 - abs(spot - strike) * 0.5), 2)
    moneyness = (spot - strike) if right == "C" else (strike - spot)
    delta = max(0.02, min(0.98, 0.5 + moneyness * 0.08))
    return {"bid": round(mid - 0.05, 2), "ask": round(mid + 0.05, 2), "bid_size": 12, "ask_size": 15,
            "iv": round(0.15 + 0.002 * abs(spot - strike), 4), "delta": delta if right == "C" else -delta,
            "gamma": round(0.05 / (1 + abs(spot - strike)), 5), "open_interest": int(1000 + strike % 7 * 100),
            "volume": int(50 + strike % 5 * 10)}


def build_tws(**kwargs: Any) -> FakeTWS:
    """A FakeTWS (not started) with SPY and QQQ, their chains, every option quoted."""
    tws = FakeTWS(**kwargs)
    for sym, spot, strikes in (("SPY", SPY_SPOT, SPY_STRIKES), ("QQQ", QQQ_SPOT, QQQ_STRIKES)):
        tws.add_stock(sym, bid=spot - 0.05, ask=spot + 0.05, last=spot)
        tws.add_option_chain(sym, [*EXPIRIES, FAR_EXPIRY], strikes)
        for expiry in (*EXPIRIES, FAR_EXPIRY):
            for k in strikes:
                for right in ("C", "P"):
                    tws.set_option_quote(sym, expiry, k, right, **option_values(spot, expiry, k, right))
    return tws


def make_ib_settings(port: int, **sections: Any) -> Settings:
    """dry-run settings on the fake at ``port``; ``sections`` update the defaults per section."""
    data: dict[str, Any] = {
        "mode": "dry-run",
        "market": {"source": "ibkr", "symbols": ["SPY", "QQQ"], "tick_seconds": 10, "chain_seconds": 60},
        "ibkr": {"host": "127.0.0.1", "port": port, "reconnect_min_s": 0.05, "reconnect_max_s": 0.2,
                 "connect_timeout_s": 3.0, "max_messages_per_s": 50, "chain_expiries": 2, "chain_max_dte": 45,
                 "chain_strikes_each_side": 2, "depth_subscriptions": 2, "qualify_batch": 20},
        "metrics": {"enabled": False},
    }
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values} if isinstance(values, dict) else values
    return Settings.model_validate(data)


def make_ib_context(bus: Bus, settings: Settings) -> Context:
    return make_context(bus, settings=settings)


@pytest.fixture
def tws():
    fake = build_tws()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def ib_settings(tws: FakeTWS) -> Settings:
    return make_ib_settings(tws.port)


@pytest.fixture
def ib_ctx(bus: Bus, ib_settings: Settings) -> Context:
    return make_ib_context(bus, ib_settings)


async def stream_events(bus: Bus, stream: str) -> list[Event]:
    return [decode(fields) for _, fields in await bus.redis.xrange(bus.keys.stream(stream))]


def requests(tws: FakeTWS, msg_id: int, client_id: int | None = None) -> list[tuple[float, int, int, list[str]]]:
    """The fake's request_log entries of one message id (and client id)."""
    return [e for e in tws.request_log if e[1] == msg_id and (client_id is None or e[2] == client_id)]


@pytest.fixture
def no_decoder_errors(caplog: pytest.LogCaptureFixture):
    """Anything ib_async failed to decode, or the fake failed to handle, fails the test."""
    caplog.set_level(logging.INFO)
    yield
    bad = [r.getMessage() for r in caplog.records
           if (r.name == "ib_async.Decoder" and r.levelno >= logging.ERROR)
           or (r.name == "tests.fakes.ib_tws" and r.levelno >= logging.ERROR)]
    assert not bad, bad
