"""The overseer's degradation baseline: a strategy's historical win rate from the trade ledger over
the trades it closed before the current New York day (within ``baseline_lookback_days``), once it
has ``baseline_min_trades`` of them; else the configured baseline. Looked up once per New York day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from lr_helpers import position, spread, trades, write

from core.bus.events import AlertEvent, PositionEvent
from core.clock.calendar import NY
from overseer.anomaly import AnomalyService
from tests.helpers import make_context

TODAY = date(2026, 11, 20)  # a Friday
EARLIER = [TODAY - timedelta(days=d) for d in range(1, 19)]  # the 18 days before


def _svc(bus: Any, ledger_url: str, ledger: dict[str, Any] | None = None, **overseer: Any) -> AnomalyService:
    cfg = {"baseline_win_rate_pct": 50, "win_rate_margin_pts": 10, "degradation_window": 20,
           "degradation_min_trades": 10, **overseer}
    ctx = make_context(bus, overseer=cfg, market={"symbols": ["SPY"]}, ledger=ledger or {})
    ctx.extras["ledger_url"] = ledger_url
    return AnomalyService(ctx)


def _closed(n: int, pnl: float, day: date = TODAY, strategy: str = "gamma_0dte") -> PositionEvent:
    ts = int(datetime(day.year, day.month, day.day, 12, 0, n % 60, tzinfo=NY).astimezone(UTC).timestamp() * 1000)
    return position("closed", f"live-{day}-{n}", ts, strategy, qty=2, qty_open=0, price=2.5, realized_pnl=pnl)


async def _window(svc: AnomalyService, pnls: list[float], day: date = TODAY) -> list[str]:
    """Feed today's closed trades one by one (as the bus does); the degradation findings the alert
    book held after each (a single flag is INFO: kept in the book and logged, no AlertEvent)."""
    seen: list[str] = []
    for i, pnl in enumerate(pnls):
        tx = svc.bus.tx()
        await svc.handle(_closed(i, pnl, day), tx)
        await tx.commit()
        assert not [e for e in tx.events if isinstance(e, AlertEvent)]  # never two flags here
        for ident, entry in (await svc.book.load()).items():
            if ident.startswith("STRATEGY_") and f"{ident}: {entry['message']}" not in seen:
                seen.append(f"{ident}: {entry['message']}")
    return seen


DEGRADED = ["STRATEGY_DEGRADED|gamma_0dte: strategy gamma_0dte degrading: win rate below baseline"]
RECENT = spread(7, 20)  # 35 % wins, avg loss = avg win, never more than two losses in a row


async def test_a_strategy_that_always_won_30_percent_is_not_degraded_at_35(bus, ledger_url) -> None:
    write(ledger_url, "demo", trades("gamma_0dte", EARLIER, spread(12, 40)))  # 30 % over 40 earlier trades
    svc = _svc(bus, ledger_url)
    assert await _window(svc, RECENT) == []  # 35 % is not below 30 - 10
    assert await svc._baseline("gamma_0dte", TODAY) == 30.0


async def test_too_few_earlier_trades_keep_the_configured_baseline(bus, ledger_url) -> None:
    write(ledger_url, "demo", trades("gamma_0dte", EARLIER, spread(9, 29)))  # 31 %, but 29 < 30 trades
    svc = _svc(bus, ledger_url)
    assert await _window(svc, RECENT) == DEGRADED  # 35 % < 50 - 10
    assert "STRATEGY_DEGRADED|gamma_0dte" in await svc.book.load()  # still, at the end of the window
    assert await svc._baseline("gamma_0dte", TODAY) == 50.0
    # a per-strategy override is the fallback of that strategy
    svc = _svc(bus, ledger_url, strategy_baseline_win_rate_pct={"gamma_0dte": 44.0})
    assert await svc._baseline("gamma_0dte", TODAY) == 44.0


async def test_only_days_before_today_within_the_lookback_count(bus, ledger_url) -> None:
    evs = trades("gamma_0dte", [TODAY], spread(12, 40))  # today's own trades never set the bar
    evs += trades("gamma_0dte", [TODAY - timedelta(days=91)], spread(12, 40))  # past the 90-day lookback
    evs += trades("moc_imbalance", EARLIER, spread(12, 40))  # another strategy's history
    write(ledger_url, "demo", evs)
    svc = _svc(bus, ledger_url)
    assert await svc._baseline("gamma_0dte", TODAY) == 50.0
    assert await svc._baseline("moc_imbalance", TODAY) == 30.0
    svc = _svc(bus, ledger_url, baseline_lookback_days=91)
    assert await svc._baseline("gamma_0dte", TODAY) == 30.0  # day -91 now inside


async def test_looked_up_once_per_new_york_day(bus, sqlite_url) -> None:
    write(sqlite_url, "demo", trades("gamma_0dte", EARLIER, spread(12, 40)))
    svc = _svc(bus, sqlite_url)
    assert await svc._baseline("gamma_0dte", TODAY) == 30.0
    write(sqlite_url, "demo", trades("gamma_0dte", EARLIER, [100.0] * 60))  # history changes during the day
    assert await svc._baseline("gamma_0dte", TODAY) == 30.0  # ... the day keeps its bar (cached)
    assert await svc._baseline("gamma_0dte", TODAY + timedelta(days=1)) == 72.0  # 72 of 100: next day re-read


async def test_an_unreachable_ledger_falls_back_and_never_blocks_the_event(bus, tmp_path) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
    svc = _svc(bus, url, ledger={"connect_timeout_s": 1})  # a short connect timeout keeps the test short
    assert await _window(svc, RECENT) == DEGRADED  # handled, nothing raised to the consumer (no retry loop)
    assert "unreachable" in svc.ledger.last_error
    missing = tmp_path / "none.sqlite"  # the mode's file not created yet: same fallback, file not created
    svc = _svc(bus, f"sqlite:///{missing}")
    assert await svc._baseline("gamma_0dte", TODAY) == 50.0 and not missing.exists()
