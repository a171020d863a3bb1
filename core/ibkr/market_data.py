"""IBKR as a :class:`~core.market.source.MarketSource` (``market.source: ibkr``).

One :class:`~core.ibkr.connection.IbConnection` with role ``market`` (its own client id). All
data arrives as ib_async ticker updates (``pendingTickersEvent``) and is copied, validated, into
this source's own state, stamped with the service clock; the methods the market service calls
each tick only read that state.

**Underlyings** stream L1 (``reqMktData``): ``quote()`` returns the last *valid* top of book
(bid and ask > 0, not crossed; for an index, which has no book, bid = ask = last). ``ts`` is
when it was last updated. Staleness rule: ``stale=True`` when the current book is not valid (a
bad tick replaced it: the last good values are returned, never the bad ones), when the
connection is down, or when no valid update came for ``risk.max_quote_age_s`` (the age past
which risk refuses to trade on a quote anyway). ``prev_close`` is IB's close tick (0.0 while
unknown). ``prints()`` are the L1 last-trade ticks (IB samples them a few times a second: a
sampled tape, not every trade), side by the quote rule (at/above ask buy, at/below bid sell,
else mid), exchange ``"IB"``. ``option_flow`` / ``net_premium`` return [] (flow alerts and net
premium need a vendor feed; they come later) and ``closing_imbalance`` None.

**Chains** are discovered at run time each day (:func:`~core.ibkr.contracts.discover_chain`,
in the background, once the underlying has a price), subscribed with generic ticks
``100,101,106`` (option volume, open interest, implied vol). ``chain()`` builds an
:class:`OptionChain` from each contract's last values (kept after its line is cancelled):
bid/ask (rows without a two-sided quote are skipped), iv / delta / gamma from IB's model greeks
(NaN when IB gave none), open interest from the call/put OI tick (NaN when none), volume (0 when
none, as ``OptionChain`` documents). ``meta``: ``feed`` "ibkr", ``age_s`` (per row, seconds since
its last update), ``max_age_s``, ``contracts_total``, ``market_data_type``. Rows older than
``market.snapshot_ttl_s`` are left out.

**Line budget** (``ibkr.market_data_lines`` = L, IB's simultaneous ``reqMktData`` lines for the
account; depth lines are counted separately by IB)::

    spare       = max(1, L // 20)                 # TWS windows of the same login use lines too
    usable      = L - spare
    chain lines = usable - underlyings - watched  # underlyings and watched contracts first
    contracts   = symbols * chain_expiries * 2 * chain_strikes_each_side * 2 (calls and puts)
    rounds      = ceil(contracts / chain lines)   # 1 = everything streams, no rotation

When the chain does not fit, a batch of ``chain lines`` contracts is subscribed and, at the next
tick once every line of the batch has answered (at the latest after 3 ticks), cancelled and
the next batch subscribed: every strike is refreshed every ``rounds`` ticks, and costs
``2 * chain lines`` API messages per tick. The batch does not move while ib_async is
throttling (its message queue is behind). Defaults (100 lines, 3 symbols, 2 expiries, 8 strikes
each side, 10 s ticks): 95 usable, 92 chain lines, 192 contracts, 3 rounds - every strike
refreshed every 30 s, 184 messages per tick (~45% of the pacing budget). One symbol's default
chain (64 contracts + its underlying) streams entirely within 95 lines; up to 8 symbols keep a
full rotation within one ``market.chain_seconds`` (60 s). :meth:`IbkrMarketSource.budget` returns
these numbers for the running configuration.

**Depth**: at most ``ibkr.depth_subscriptions`` ``reqMktDepth`` (SMART, ``market.depth_levels``
rows) at a time, rotated over the stock/ETF symbols every ``ibkr.depth_rotate_s`` (service
clock); the last valid book of each symbol is kept (``stale=True`` once its line rotated away).

**Watched contracts** (``watch(keys)``: working orders and open positions) always stream, before
any chain line; ``option_quotes()`` returns their quotes.

**Reconnects**: ib_async forgets every subscription with the socket (and TWS after 1101 /
2103-2104): on ``on_ready`` every line and depth line is requested again (lines ib_async still
tracks are cancelled first). ``advance()`` returns False while not connected or before any data.

**Bad data** (NaN / inf, IB's -1 "no value", other negatives, crossed quotes or books) is never
passed on: counted in ``REJECTED{service="market", reason}`` (reasons ``non_finite``,
``no_value``, ``negative``, ``crossed``, ``crossed_book``), in :attr:`IbkrMarketSource.rejected`,
and logged (at most once a minute per reason, with the count in between).

**Reference**: the 52-week IV range from IB's daily ``OPTION_IMPLIED_VOLATILITY`` history,
requested for every symbol in the background at start; ``reference()`` waits for it at most
``REF_WAIT_S`` in all (then None). Earnings and insider data are not IB's: None / 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from ib_async import Contract

from core.clock.calendar import NY
from core.ibkr.connection import IbConnection, IbUnavailable
from core.ibkr.contracts import ContractCache, contract_from_key, discover_chain
from core.market.chain import OptionChain
from core.market.reference import Reference
from core.market.source import (
    DepthBook,
    MarketSource,
    OptionQuote,
    TradePrint,
    UnderlyingQuote,
)
from core.runtime.metrics import REJECTED

if TYPE_CHECKING:
    from core.domain.contract import OptionContract
    from core.runtime.service import Context

log = logging.getLogger("quanticity.ibkr.market")

OPTION_TICKS = "100,101,106"
BID_TICKS = frozenset({1, 66})
ASK_TICKS = frozenset({2, 67})
LAST_TICKS = frozenset({4, 68})
PRICE_TICKS = BID_TICKS | ASK_TICKS | LAST_TICKS
MAX_DWELL_TICKS = 3  # a rotation batch moves on after this many ticks even if some lines never answered
DISCOVER_RETRY_S = 30.0
REF_TIMEOUT_S = 10.0
LOG_EVERY_S = 60.0
SERVICE = "market"
NAN = float("nan")


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _finite(x: Any) -> float | None:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _pos(x: Any) -> float | None:
    f = _finite(x)
    return f if f is not None and f > 0 else None


def _tick_reason(price: float) -> str | None:
    """Why a raw price tick is not a price (None: it is one, or a plain zero)."""
    if not math.isfinite(price):
        return "non_finite"
    if price == -1:
        return "no_value"
    if price < 0:
        return "negative"
    return None


def _side(value: float, prev: float, bad: bool) -> float:
    """One side of an option quote: NaN after a bad tick or IB's explicit "none" (-1 / 0),
    the previous value while the (re-subscribed) ticker has nothing yet."""
    if bad:
        return NAN
    if math.isnan(value):
        return prev
    return value if value > 0 else NAN


def _keep(value: float | None, prev: float, ok: bool) -> float:
    if value is None or not math.isfinite(value):
        return prev
    return value if ok else NAN


def line_budget(lines: int, symbols: int, watched: int, chain_contracts: int, tick_s: float,
                chain_s: float, messages_per_s: float, contracts_per_symbol: int) -> dict[str, Any]:
    """The line arithmetic of the module docstring."""
    spare = max(1, lines // 20)
    usable = lines - spare
    chain_lines = max(0, usable - symbols - watched)
    rotating = chain_contracts > chain_lines
    rounds = (math.ceil(chain_contracts / chain_lines) if chain_lines else None) if chain_contracts else 1
    per_tick = 2 * chain_lines if rotating else 0
    max_rounds = max(1, int(chain_s // tick_s))
    within = 0
    for n in range(1, usable + 1):
        if n * contracts_per_symbol > max_rounds * max(0, usable - n):
            break
        within = n
    return {
        "lines": lines, "spare": spare, "usable": usable, "underlyings": symbols, "watched": watched,
        "chain_lines": chain_lines, "chain_contracts": chain_contracts, "rotating": rotating,
        "rounds": rounds, "refresh_s": None if rounds is None else rounds * tick_s,
        "messages_per_tick": per_tick,
        "pacing_share": round(per_tick / (tick_s * messages_per_s / 1.1), 3) if per_tick else 0.0,
        "contracts_per_symbol": contracts_per_symbol,
        "max_symbols_streaming": usable // (1 + contracts_per_symbol),
        "max_symbols_within_chain_cadence": within,
    }


@dataclass
class _Underlying:
    symbol: str
    contract: Contract | None = None
    is_index: bool = False
    bid: float = NAN  # last valid values
    ask: float = NAN
    last: float = NAN
    bid_size: float = 0.0
    ask_size: float = 0.0
    volume: float = 0.0
    close: float = NAN
    quote_ms: int | None = None  # when the valid book was last updated
    valid: bool = False  # the current book is valid


@dataclass
class _Row:
    """The last values of one option contract (kept after its line is cancelled)."""

    contract: OptionContract
    bid: float = NAN
    ask: float = NAN
    bid_size: float = NAN
    ask_size: float = NAN
    iv: float = NAN
    delta: float = NAN
    gamma: float = NAN
    open_interest: float = NAN
    volume: float = NAN
    und_price: float = NAN
    ts_ms: int = 0

    @property
    def two_sided(self) -> bool:
        return self.bid > 0 and self.ask > 0 and self.bid <= self.ask  # NaN compares False


@dataclass
class _Book:
    ts_ms: int
    bids: list[tuple[float, float]] = field(default_factory=list)
    asks: list[tuple[float, float]] = field(default_factory=list)


class IbkrMarketSource(MarketSource):
    feed = "ibkr"
    REF_WAIT_S = 3.0  # reference(): total wait for the background IV-history requests

    def __init__(self, ctx: Context, conn: IbConnection | None = None) -> None:
        self.ctx = ctx
        s = ctx.settings
        self.ib_settings = s.ibkr
        self.symbols = list(s.market.symbols)
        self.conn = conn or IbConnection(s.ibkr, "market", redis=ctx.redis, keys=ctx.keys, bus=ctx.bus,
                                         clock=ctx.clock)
        self.cache = ContractCache(self.conn, s.ibkr.qualify_batch)
        self.rejected: Counter[str] = Counter()
        self._und = {sym: _Underlying(sym) for sym in self.symbols}
        self._und_by_con: dict[int, str] = {}
        self._chains: dict[str, list[OptionContract]] = {}
        self._chain_day: dict[str, date] = {}
        self._retry_at: dict[str, float] = {}
        self._rows: dict[str, _Row] = {}
        self._watch: set[str] = set()
        self._lines: dict[int, Contract] = {}  # conId -> contract with a live reqMktData
        self._fresh: dict[int, bool] = {}  # line answered since it was requested
        self._rot: list[str] = []
        self._rot_pos = 0
        self._batch: list[str] = []
        self._batch_ticks = 0
        self._depth_lines: dict[str, Contract] = {}
        self._depth_since_ms: int | None = None
        self._depth_pos = 0
        self._books: dict[str, _Book] = {}
        self._prints: dict[str, deque[TradePrint]] = {sym: deque(maxlen=20_000) for sym in self.symbols}
        self._tasks: dict[str, asyncio.Task] = {}
        self._refs: dict[str, Reference] = {}
        self._ref_task: asyncio.Task | None = None
        self._ref_deadline: float | None = None
        self._logged: dict[str, tuple[float, int]] = {}  # reason -> (last logged, rejected since)
        self._throttling = False
        self._started = False
        self._now: datetime | None = None

    @classmethod
    def from_context(cls, ctx: Context) -> IbkrMarketSource:
        return cls(ctx)

    # ------------------------------------------------------------------ lifecycle
    async def start(self, now: datetime) -> None:
        self._now = now
        ib = self.conn.ib
        ib.pendingTickersEvent += self._on_tickers
        ib.client.throttleStart += self._throttle_on
        ib.client.throttleEnd += self._throttle_off
        self.conn.on_ready(self._on_ready)
        self.conn.on_lost(self._on_lost)
        await self.conn.start()
        try:
            for sym in self.symbols:
                c = await self.cache.underlying(sym)
                if c is None:
                    continue
                u = self._und[sym]
                u.contract, u.is_index = c, c.secType == "IND"
                self._und_by_con[c.conId] = sym
        except (TimeoutError, ConnectionError) as exc:
            await self.conn.stop()
            raise IbUnavailable(f"IBKR: could not look up the underlyings ({type(exc).__name__})") from None
        self._started = True
        self._sync_lines()
        self._step_depth(self.ctx.clock.ms())
        self._ref_task = asyncio.create_task(self._load_references(), name="ibkr-references")

    async def stop(self) -> None:
        self._started = False
        tasks = [t for t in (*self._tasks.values(), self._ref_task) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        ib = self.conn.ib
        ib.pendingTickersEvent -= self._on_tickers
        ib.client.throttleStart -= self._throttle_on
        ib.client.throttleEnd -= self._throttle_off
        await self.conn.stop()

    def _throttle_on(self) -> None:
        self._throttling = True

    def _throttle_off(self) -> None:
        self._throttling = False

    async def _on_ready(self, first: bool) -> None:
        if first or not self._started:
            return  # start() subscribes after the first connect
        ib = self.conn.ib
        tracked_md = ib.wrapper.ticker2ReqId.get("mktData", {})
        tracked_depth = ib.wrapper.ticker2ReqId.get("mktDepth", {})
        for c in self._lines.values():  # same socket (1101, 2104): TWS dropped them, ib_async did not
            t = ib.ticker(c)
            if t is not None and t in tracked_md:
                ib.cancelMktData(c)
        for c in self._depth_lines.values():
            t = ib.ticker(c)
            if t is not None and t in tracked_depth:
                ib.cancelMktDepth(c, isSmartDepth=True)
        n = len(self._lines)
        self._lines.clear()
        self._fresh.clear()
        self._depth_lines.clear()
        self._sync_lines()
        self._step_depth(self.ctx.clock.ms(), keep=True)
        log.info("ibkr market: resubscribed %d lines (%d before)", len(self._lines), n)

    def _on_lost(self) -> None:
        log.warning("ibkr market: connection lost; quotes are stale until it is back")

    # ------------------------------------------------------------------ the tick
    async def advance(self, now: datetime) -> bool:
        self._now = now
        if not self._started or not self.conn.connected:
            return False
        today = now.astimezone(NY).date()
        self._kick_discovery(today)
        self._kick_watch(today)
        self._step_rotation()
        self._sync_lines()
        self._step_depth(_ms(now))
        return any(u.quote_ms is not None for u in self._und.values())

    def regular_hours(self, now: datetime) -> bool:
        return self.ctx.calendar.is_open(now)

    def _now_ms(self) -> int:
        return _ms(self._now) if self._now is not None else self.ctx.clock.ms()

    # ------------------------------------------------------------------ discovery and watch
    def _spot(self, sym: str) -> float | None:
        u = self._und.get(sym)
        if u is None or u.quote_ms is None:
            return None
        if u.is_index:
            return _pos(u.last)
        return (u.bid + u.ask) / 2.0

    def _kick_discovery(self, today: date) -> None:
        loop_now = asyncio.get_running_loop().time()
        for sym in self.symbols:
            if self._chain_day.get(sym) == today or self._und[sym].contract is None:
                continue
            task = self._tasks.get(f"chain:{sym}")
            if (task is not None and not task.done()) or loop_now < self._retry_at.get(sym, 0.0):
                continue
            spot = self._spot(sym)
            if spot is None:
                continue
            self._tasks[f"chain:{sym}"] = asyncio.create_task(self._discover(sym, spot, today),
                                                              name=f"ibkr-chain-{sym}")

    async def _discover(self, sym: str, spot: float, today: date) -> None:
        try:
            chain = await discover_chain(self.conn, sym, spot, self.ib_settings, today, self.cache)
        except (OSError, TimeoutError, ConnectionError, RuntimeError, ValueError) as exc:
            log.warning("ibkr market: %s chain discovery failed (%s); retrying in %.0fs", sym,
                        type(exc).__name__, DISCOVER_RETRY_S)
            self._retry_at[sym] = asyncio.get_running_loop().time() + DISCOVER_RETRY_S
            return
        if not chain:
            log.warning("ibkr market: %s has no listed expiry within %d days", sym, self.ib_settings.chain_max_dte)
        self._chains[sym] = chain
        self._chain_day[sym] = today
        keep = {c.key for cs in self._chains.values() for c in cs} | self._watch
        for key in [k for k in self._rows if k not in keep]:
            del self._rows[key]
        self._rebuild_rotation()

    def watch(self, contract_keys: set[str]) -> None:
        wanted = set()
        for key in contract_keys:
            c = contract_from_key(key)
            if c is not None and c.symbol in self._und:
                wanted.add(c.key)
        if wanted != self._watch:
            self._watch = wanted
            self._rebuild_rotation()

    def _kick_watch(self, today: date) -> None:
        todo = [c for k in sorted(self._watch) if k not in self.cache.options
                and not self.cache.known_unknown(k, today) and (c := contract_from_key(k)) is not None]
        task = self._tasks.get("watch")
        if todo and (task is None or task.done()):
            self._tasks["watch"] = asyncio.create_task(self._qualify_watch(todo, today), name="ibkr-watch")

    async def _qualify_watch(self, todo: list[OptionContract], today: date) -> None:
        try:
            await self.cache.qualify(todo, today)
        except (OSError, TimeoutError, ConnectionError, RuntimeError, ValueError) as exc:
            log.warning("ibkr market: could not qualify watched contracts (%s)", type(exc).__name__)
            return
        unknown = [c.key for c in todo if self.cache.known_unknown(c.key, today)]
        if unknown:
            log.error("ibkr market: watched contracts unknown at IB: %s", ", ".join(unknown))
        self._rebuild_rotation()
        if self._started and self.conn.connected:
            self._sync_lines()

    # ------------------------------------------------------------------ lines
    def _watched_contracts(self) -> list[Contract]:
        return [c for k in sorted(self._watch) if (c := self.cache.options.get(k)) is not None]

    def _usable(self) -> int:
        lines = self.ib_settings.market_data_lines
        return lines - max(1, lines // 20)

    def _underlying_contracts(self) -> list[Contract]:
        return [u.contract for u in self._und.values() if u.contract is not None]

    def _chain_capacity(self) -> int:
        used = len(self._underlying_contracts()) + len(self._watched_contracts())
        return max(0, self._usable() - used)

    def _rebuild_rotation(self) -> None:
        rot = [c.key for sym in self.symbols for c in self._chains.get(sym, ())
               if c.key not in self._watch and c.key in self.cache.options]
        if rot != self._rot:
            self._rot = rot
            self._rot_pos %= max(1, len(rot))
            self._batch = [k for k in self._batch if k in set(rot)]

    def _step_rotation(self) -> None:
        cap, rot = self._chain_capacity(), self._rot
        if len(rot) <= cap:
            self._batch = list(rot)
            return
        if cap == 0:
            self._batch = []
            return
        answered = bool(self._batch) and all(
            self._fresh.get(self.cache.options[k].conId, False) for k in self._batch)
        hold = (not answered and self._batch_ticks < MAX_DWELL_TICKS) or self._throttling
        if self._batch and hold:
            self._batch_ticks += 1
            return
        n = len(rot)
        self._batch = [rot[(self._rot_pos + i) % n] for i in range(cap)]
        self._rot_pos = (self._rot_pos + cap) % n
        self._batch_ticks = 0

    def _wanted(self) -> dict[int, tuple[Contract, str]]:
        cap = self._usable()
        wanted: dict[int, tuple[Contract, str]] = {}
        for c in self._underlying_contracts():
            wanted[c.conId] = (c, "")
        for c in [*self._watched_contracts(), *(self.cache.options[k] for k in self._batch)]:
            if len(wanted) >= cap:
                break
            wanted.setdefault(c.conId, (c, OPTION_TICKS))
        return wanted

    def _sync_lines(self) -> None:
        """Cancel lines no longer wanted, then request the new ones (cancels go out first, so the
        account never holds more than the budget)."""
        if not self.conn.connected:
            return
        ib = self.conn.ib
        wanted = self._wanted()
        for cid in [c for c in self._lines if c not in wanted]:
            ib.cancelMktData(self._lines.pop(cid))
            self._fresh.pop(cid, None)
        for cid, (c, generic) in wanted.items():
            if cid not in self._lines:
                ib.reqMktData(c, generic)
                self._lines[cid] = c
                self._fresh[cid] = False

    def _step_depth(self, now_ms: int, keep: bool = False) -> None:
        s = self.ib_settings
        syms = [u.symbol for u in self._und.values() if u.contract is not None and not u.is_index]
        d = min(s.depth_subscriptions, len(syms))
        if d <= 0 or not self.conn.connected:
            return
        if len(syms) <= d:
            wanted = syms
        elif keep and self._depth_since_ms is not None:  # resubscribe the same symbols
            wanted = [syms[(self._depth_pos - d + i) % len(syms)] for i in range(d)]
        elif self._depth_since_ms is None or now_ms - self._depth_since_ms >= s.depth_rotate_s * 1000:
            wanted = [syms[(self._depth_pos + i) % len(syms)] for i in range(d)]
            self._depth_pos = (self._depth_pos + d) % len(syms)
            self._depth_since_ms = now_ms
        else:
            return
        ib = self.conn.ib
        for sym in [x for x in self._depth_lines if x not in wanted]:
            ib.cancelMktDepth(self._depth_lines.pop(sym), isSmartDepth=True)
        for sym in wanted:
            if sym not in self._depth_lines:
                c = self._und[sym].contract
                ib.reqMktDepth(c, numRows=self.ctx.settings.market.depth_levels, isSmartDepth=True)
                self._depth_lines[sym] = c

    def budget(self) -> dict[str, Any]:
        """The line arithmetic (module docstring) for this configuration and what is watched now."""
        s, m = self.ib_settings, self.ctx.settings.market
        per = s.chain_expiries * 2 * s.chain_strikes_each_side * 2
        discovered = sum(len(c) for c in self._chains.values())
        contracts = discovered if len(self._chains) == len(self.symbols) else len(self.symbols) * per
        out = line_budget(s.market_data_lines, len(self.symbols), len(self._watch), contracts, m.tick_seconds,
                          m.chain_seconds, s.max_messages_per_s, per)
        out["depth_subscriptions"] = s.depth_subscriptions
        out["lines_in_use"] = len(self._lines)
        return out

    # ------------------------------------------------------------------ incoming data
    def _reject(self, what: str, reason: str) -> None:
        REJECTED.labels(SERVICE, reason).inc()
        self.rejected[reason] += 1
        now = asyncio.get_running_loop().time()
        last, quiet = self._logged.get(reason, (-math.inf, 0))
        if now - last >= LOG_EVERY_S:
            self._logged[reason] = (now, 0)
            log.warning("ibkr market: rejected %s data for %s (%d more since the last report; counted, "
                        "logged at most once a minute per reason)", reason, what, quiet)
        else:
            self._logged[reason] = (last, quiet + 1)

    def _on_tickers(self, tickers: Any) -> None:
        try:
            now_ms = self.ctx.clock.ms()
            for t in tickers:
                cid = getattr(t.contract, "conId", 0)
                if cid in self._fresh:
                    self._fresh[cid] = True
                sym = self._und_by_con.get(cid)
                if sym is not None:
                    if t.ticks or not t.domTicks:
                        self._update_underlying(self._und[sym], t, now_ms)
                    if t.domTicks:
                        self._update_book(sym, t, now_ms)
                    continue
                oc = self.cache.by_con_id(cid)
                if oc is not None:
                    self._update_option(oc, t, now_ms)
        except Exception:
            log.exception("ibkr market: ticker update failed")

    def _bad_ticks(self, what: str, ticks: list) -> set[int]:
        """Count the bad raw price ticks; returns their tick types."""
        bad: set[int] = set()
        for tk in ticks:
            if tk.tickType in PRICE_TICKS:
                reason = _tick_reason(float(tk.price))
                if reason is not None:
                    bad.add(tk.tickType)
                    self._reject(what, reason)
        return bad

    def _update_underlying(self, u: _Underlying, t: Any, now_ms: int) -> None:
        self._bad_ticks(u.symbol, t.ticks)
        last = _pos(t.last)
        if u.is_index:
            bid = ask = last
            valid = last is not None
        else:
            bid, ask = _pos(t.bid), _pos(t.ask)
            valid = bid is not None and ask is not None
            if valid and bid > ask:
                self._reject(u.symbol, "crossed")
                valid = False
        u.valid = valid
        if valid:
            u.bid, u.ask = bid, ask
            if not u.is_index:
                u.bid_size = _finite(t.bidSize) or 0.0
                u.ask_size = _finite(t.askSize) or 0.0
            u.quote_ms = now_ms
        if last is not None:
            u.last = last
        vol = _finite(t.volume)
        if vol is not None and vol >= 0:
            u.volume = vol
        close = _pos(t.close)
        if close is not None:
            u.close = close
        for tk in t.ticks:
            if tk.tickType in LAST_TICKS and _pos(tk.price) and (_finite(tk.size) or 0) > 0:
                self._print(u, float(tk.price), float(tk.size), now_ms)

    def _print(self, u: _Underlying, price: float, size: float, now_ms: int) -> None:
        if u.valid and not u.is_index and price >= u.ask:
            side = "buy"
        elif u.valid and not u.is_index and price <= u.bid:
            side = "sell"
        else:
            side = "mid"
        kind = "odd_lot" if size < 100 else "block" if size >= 10_000 else "round_lot"
        self._prints[u.symbol].append(TradePrint(symbol=u.symbol, ts=_dt(now_ms), price=price, size=int(size),
                                                 side=side, exchange="IB", kind=kind))

    def _update_option(self, oc: OptionContract, t: Any, now_ms: int) -> None:
        key = oc.key
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = _Row(oc)
        bad = self._bad_ticks(key, t.ticks)
        row.bid = _side(float(t.bid), row.bid, bool(bad & BID_TICKS))
        row.ask = _side(float(t.ask), row.ask, bool(bad & ASK_TICKS))
        if row.bid > 0 and row.ask > 0 and row.bid > row.ask:
            self._reject(key, "crossed")
            row.bid = row.ask = NAN
        for name, value in (("bid_size", t.bidSize), ("ask_size", t.askSize)):
            f = _finite(value)
            if f is not None:
                setattr(row, name, f if f >= 0 else NAN)
        g = t.modelGreeks
        if g is not None:
            iv, delta, gamma = _finite(g.impliedVol), _finite(g.delta), _finite(g.gamma)
            row.iv = iv if iv is not None and iv > 0 else NAN
            row.delta = delta if delta is not None and -1.0 <= delta <= 1.0 else NAN
            row.gamma = gamma if gamma is not None and gamma >= 0 else NAN
            row.und_price = _pos(g.undPrice) or row.und_price
        oi = _finite(t.callOpenInterest if oc.right.value == "C" else t.putOpenInterest)
        row.open_interest = _keep(oi, row.open_interest, oi is not None and oi >= 0)
        vol = _finite(t.volume)
        if vol is None:
            vol = _finite(t.callVolume if oc.right.value == "C" else t.putVolume)
        row.volume = _keep(vol, row.volume, vol is not None and vol >= 0)
        row.ts_ms = now_ms

    def _update_book(self, sym: str, t: Any, now_ms: int) -> None:
        def levels(raw: list, reverse: bool) -> list[tuple[float, float]]:
            ok = [(float(lv.price), float(lv.size)) for lv in raw
                  if _pos(lv.price) is not None and _pos(lv.size) is not None]
            return sorted(ok, key=lambda x: x[0], reverse=reverse)

        bids, asks = levels(t.domBids, True), levels(t.domAsks, False)
        if not bids and not asks:
            return
        if bids and asks and bids[0][0] >= asks[0][0]:
            self._reject(sym, "crossed_book")
            return
        self._books[sym] = _Book(now_ms, bids, asks)

    # ------------------------------------------------------------------ what the service reads
    def quote(self, symbol: str) -> UnderlyingQuote | None:
        u = self._und.get(symbol)
        if u is None or u.quote_ms is None:
            return None
        max_age_ms = self.ctx.settings.risk.max_quote_age_s * 1000
        stale = not u.valid or not self.conn.connected or self._now_ms() - u.quote_ms > max_age_ms
        last = u.last if math.isfinite(u.last) else (u.bid + u.ask) / 2.0
        return UnderlyingQuote(symbol=symbol, ts=_dt(u.quote_ms), bid=u.bid, ask=u.ask, last=last,
                               bid_size=int(u.bid_size), ask_size=int(u.ask_size), volume_today=int(u.volume),
                               prev_close=u.close if math.isfinite(u.close) else 0.0, stale=stale)

    def depth(self, symbol: str, levels: int) -> DepthBook | None:
        b = self._books.get(symbol)
        if b is None:
            return None
        bids, asks = b.bids[:levels], b.asks[:levels]
        return DepthBook(symbol=symbol, ts=_dt(b.ts_ms),
                         bid_price=np.array([p for p, _ in bids], dtype=np.float64),
                         bid_size=np.array([s for _, s in bids], dtype=np.int64),
                         ask_price=np.array([p for p, _ in asks], dtype=np.float64),
                         ask_size=np.array([s for _, s in asks], dtype=np.int64),
                         stale=symbol not in self._depth_lines or not self.conn.connected)

    def chain(self, symbol: str) -> OptionChain | None:
        contracts = self._chains.get(symbol)
        spot = self._spot(symbol)
        if not contracts or spot is None:
            return None
        now_ms = self._now_ms()
        today = _dt(now_ms).astimezone(NY).date()
        max_age_ms = self.ctx.settings.market.snapshot_ttl_s * 1000
        rows = [r for c in contracts if c.expiry >= today and (r := self._rows.get(c.key)) is not None
                and r.two_sided and now_ms - r.ts_ms <= max_age_ms]
        if not rows:
            return None
        f = np.float64
        age = np.array([(now_ms - r.ts_ms) / 1000.0 for r in rows], dtype=f)
        return OptionChain(
            symbol=symbol, spot=float(spot), asof=_dt(now_ms),
            expiry=np.array([r.contract.expiry for r in rows], dtype="datetime64[D]"),
            strike=np.array([r.contract.strike for r in rows], dtype=f),
            is_call=np.array([r.contract.right.value == "C" for r in rows], dtype=bool),
            bid=np.array([r.bid for r in rows], dtype=f), ask=np.array([r.ask for r in rows], dtype=f),
            iv=np.array([r.iv for r in rows], dtype=f),
            open_interest=np.array([r.open_interest for r in rows], dtype=f),
            volume=np.nan_to_num(np.array([r.volume for r in rows], dtype=f), nan=0.0),
            delta=np.array([r.delta for r in rows], dtype=f), gamma=np.array([r.gamma for r in rows], dtype=f),
            meta={"feed": self.feed, "age_s": age, "max_age_s": float(age.max()), "contracts_total": len(contracts),
                  "market_data_type": self.conn.market_data_type},
        )

    def option_quotes(self, symbol: str, contract_keys: set[str]) -> list[OptionQuote]:
        spot = self._spot(symbol)
        out: list[OptionQuote] = []
        for key in sorted(contract_keys):
            c = contract_from_key(key)
            if c is None or c.symbol != symbol:
                continue
            r = self._rows.get(c.key)
            if r is None or not r.two_sided:
                continue
            und = spot if spot is not None else (r.und_price if math.isfinite(r.und_price) else 0.0)
            out.append(OptionQuote(contract_key=key, symbol=symbol, expiry=c.expiry.isoformat(), strike=c.strike,
                                   right=c.right.value, bid=r.bid, ask=r.ask,
                                   bid_size=r.bid_size if math.isfinite(r.bid_size) else 0.0,
                                   ask_size=r.ask_size if math.isfinite(r.ask_size) else 0.0,
                                   underlying=float(und), ts_ms=r.ts_ms))
        return out

    def prints(self, symbol: str) -> list[TradePrint]:
        q = self._prints.get(symbol)
        if not q:
            return []
        out = list(q)
        q.clear()
        return out

    # ------------------------------------------------------------------ reference
    async def _load_references(self) -> None:
        async def one(sym: str) -> None:
            c = self._und[sym].contract
            if c is None:
                return
            bars = await self.conn.ib.reqHistoricalDataAsync(
                c, endDateTime="", durationStr="1 Y", barSizeSetting="1 day",
                whatToShow="OPTION_IMPLIED_VOLATILITY", useRTH=True, timeout=REF_TIMEOUT_S)
            ivs = [v for b in bars or [] if (v := _pos(b.close)) is not None]
            if len(ivs) >= 20:
                self._refs[sym] = Reference(sym, round(min(ivs), 4), round(max(ivs), 4), None, 0.0)

        results = await asyncio.gather(*(one(s) for s in self.symbols), return_exceptions=True)
        for sym, res in zip(self.symbols, results, strict=True):
            if isinstance(res, Exception):
                log.warning("ibkr market: no IV history for %s (%s)", sym, type(res).__name__)

    async def reference(self, symbol: str) -> Reference | None:
        task = self._ref_task
        if task is not None and not task.done():
            loop = asyncio.get_running_loop()
            if self._ref_deadline is None:
                self._ref_deadline = loop.time() + self.REF_WAIT_S
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), max(0.0, self._ref_deadline - loop.time()))
        return self._refs.get(symbol)

    def describe(self) -> str:
        s = self.ib_settings
        return f"IBKR {s.host}:{s.port} client {self.conn.client_id} (market data: {self.conn.market_data_name})"
