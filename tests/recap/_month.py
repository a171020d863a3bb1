"""A month of closed trades (November 2026) as real FillEvent / PositionEvent models, written into a
ledger through ``LedgerStore.write`` the way the ledger service writes them.

Each trade's realized P&L is computed here by hand (fills, 0.65 commission per contract, x100), so the
tests have figures that do not come from the code under test. Sizes are two-digit numbers above 31
(no date, week label or count can contain them as a whole number): the redaction tests look for them.

Around the month, trades that must NOT count: one closed on Oct 30, one opened on Nov 24 and still
open, and one closed on Dec 1 (the recap's own day). Inside it, edge cases: a trade opened in October
and closed on Nov 3, one closed on Nov 30 at 22:30 New York (already Dec 1 in UTC), a flat trade
(same price, no commission), and a trade with two partial exits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

from core.bus.events import Event, FillEvent, PositionEvent
from core.clock.calendar import NY
from core.ledger.store import LedgerStore

COMMISSION = 0.65
ACCOUNT_VALUE = 250_000.0
SIZES = (37, 41, 53, 67, 43, 59, 47, 71, 61, 73)
STRATEGIES = ("momentum", "vol_fade", "gamma_pin")


def ny(d: date, t: time) -> datetime:
    return datetime.combine(d, t, tzinfo=NY)


def ms(dt: datetime) -> int:
    return int(dt.astimezone(UTC).timestamp() * 1000)


@dataclass
class Trade:
    pid: str
    strategy: str
    symbol: str
    strike: float
    right: str
    qty: int
    entry: tuple[datetime, float]
    exits: list[tuple[datetime, int, float]] = field(default_factory=list)  # (when, qty, price)
    commission: float = COMMISSION

    @property
    def closed_at(self) -> datetime | None:
        return self.exits[-1][0] if self.exits and sum(q for _, q, _ in self.exits) == self.qty else None

    @property
    def pnl(self) -> float:
        """Realized after every commission (the ledger's rule), computed by hand."""
        _, p_in = self.entry
        total = -round(self.qty * self.commission, 2)
        for _, q, px in self.exits:  # rounded to the cent at every fill, as the position manager does
            total = round(total + (px - p_in) * q * 100 - round(q * self.commission, 2), 2)
        return total

    def events(self, seq: list[int]) -> list[Event]:
        def nid() -> str:
            seq[0] += 1
            return f"ev-{seq[0]:05d}"

        expiry = "2026-12-18"
        common = {"position_id": self.pid, "strategy": self.strategy, "symbol": self.symbol, "expiry": expiry,
                  "strike": self.strike, "right": self.right, "direction": "bullish" if self.right == "C" else
                  "bearish", "horizon": "swing"}
        t_in, p_in = self.entry
        comm = round(self.qty * self.commission, 2)
        realized = -comm
        out: list[Event] = [
            FillEvent(id=nid(), ts=ms(t_in), correlation_id=self.pid, order_id=f"o-{self.pid}-in",
                      fill_id=f"f-{self.pid}-in", purpose="entry", symbol=self.symbol, expiry=expiry,
                      strike=self.strike, right=self.right, side="BUY", qty=self.qty, price=p_in, commission=comm,
                      position_id=self.pid, strategy=self.strategy),
            PositionEvent(id=nid(), ts=ms(t_in), correlation_id=self.pid, kind="entry", qty=self.qty,
                          qty_open=self.qty, price=p_in, entry_price=p_in, realized_pnl=realized, **common)]
        left = self.qty
        for i, (when, q, px) in enumerate(self.exits):
            left -= q
            c = round(q * self.commission, 2)
            realized = round(realized + (px - p_in) * q * 100 - c, 2)
            out.append(FillEvent(id=nid(), ts=ms(when), correlation_id=self.pid, order_id=f"o-{self.pid}-out{i}",
                                 fill_id=f"f-{self.pid}-out{i}", purpose="exit", symbol=self.symbol, expiry=expiry,
                                 strike=self.strike, right=self.right, side="SELL", qty=q, price=px, commission=c,
                                 position_id=self.pid, strategy=self.strategy))
            out.append(PositionEvent(id=nid(), ts=ms(when), correlation_id=self.pid,
                                     kind="closed" if left == 0 else "partial_exit", qty=q, qty_open=left, price=px,
                                     entry_price=p_in, realized_pnl=realized, reason="target", **common))
        return out


def d(day: int, month: int = 11) -> date:
    return date(2026, month, day)


def month_trades() -> tuple[list[Trade], list[Trade]]:
    """(the November trades, the trades that must not count)."""
    t = time
    inside = [
        Trade("p01", "momentum", "SPY", 590, "C", 37, (ny(d(2), t(10)), 2.35), [(ny(d(2), t(14)), 37, 3.10)]),
        Trade("p02", "momentum", "QQQ", 498, "P", 41, (ny(d(4), t(10, 30)), 3.15),
              [(ny(d(5), t(11)), 20, 2.80), (ny(d(6), t(15, 30)), 21, 2.00)]),
        Trade("p03", "vol_fade", "IWM", 238, "C", 53, (ny(d(10), t(9, 45)), 1.20), [(ny(d(10), t(12)), 53, 1.20)],
              commission=0.0),  # flat: same price, no commission
        Trade("p04", "vol_fade", "SPY", 585, "P", 67, (ny(d(16), t(10)), 0.95), [(ny(d(18), t(13)), 67, 1.40)]),
        Trade("p05", "gamma_pin", "SPX", 5900, "C", 43, (ny(d(23), t(15)), 4.10), [(ny(d(30), t(22, 30)), 43, 3.05)]),
        Trade("p06", "momentum", "IWM", 240, "C", 59, (ny(d(29, 10), t(14)), 1.85), [(ny(d(3), t(10)), 59, 2.45)]),
        Trade("p07", "gamma_pin", "QQQ", 505, "C", 47, (ny(d(12), t(10)), 2.60), [(ny(d(12), t(15)), 47, 2.10)]),
    ]
    outside = [
        Trade("p90", "momentum", "SPY", 580, "C", 71, (ny(d(28, 10), t(10)), 2.00), [(ny(d(30, 10), t(15)), 71, 2.50)]),
        Trade("p91", "vol_fade", "SPY", 600, "P", 61, (ny(d(24), t(10)), 1.10)),  # still open
        Trade("p92", "gamma_pin", "SPY", 595, "C", 73, (ny(d(30), t(15)), 1.50), [(ny(d(1, 12), t(10)), 73, 1.90)]),
    ]
    return inside, outside


def write_month(url: str, mode: str = "demo") -> tuple[list[Trade], list[Trade]]:
    """Write the month (and the trades around it) into the ledger at ``url``; one write per trade."""
    inside, outside = month_trades()
    store = LedgerStore(url, mode).open()
    try:
        seq = [0]
        for tr in inside + outside:
            # (the count write() returns is not checked: on PostgreSQL it is 0 even for new rows)
            store.write(tr.events(seq))
    finally:
        store.close()
    return inside, outside
