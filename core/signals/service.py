"""SignalService: analytics snapshots -> deduplicated SignalEvents (stream ``signals``).

Service name ``signals`` (its consumer group), streams ``("analytics",)``, event type
``analytics.snapshot``.

For each :class:`AnalyticsEvent`:

1. reject bad snapshots (non-finite numbers anywhere, spot <= 0, asof <= 0): counted
   ``bad_snapshot``, no signal, not added to the history;
2. pick the strategies to run: enabled (config ``enabled``, overridden at run time by the
   ``strategies`` hash the admin / overseer switch), the symbol listed in their
   ``symbols``, and the service clock's NY time inside their ``window`` within today's
   NYSE session (half-open, like the risk layer);
3. load the symbol's latest chain (``keys.snapshot("chain", symbol)``, decoded with
   :func:`decode_chain`, cleaned with :func:`clean_chain`); skip (counted
   ``chain_missing`` / ``bad_chain`` / ``chain_stale``) when it is absent, undecodable,
   or older than the snapshot by more than ``chain_max_lag_s`` or newer by more than
   ``chain_max_lead_s``. Snapshots older than ``max_snapshot_age_s`` at the clock's now
   (a backlog after an outage) are skipped as ``snapshot_stale``. The switches, the watch set
   and the chain are read in one round trip; the chain not at all when this process's analytics
   service already decoded the very chain the snapshot was computed from
   (:mod:`core.analytics.chain_cache`, keyed by chain key + asof: a chain is immutable per asof);
4. run each strategy (pure ``evaluate``); the confidence may be smoothed per idea
   (``confidence_ema_alpha`` < 1, off by default); a candidate under ``min_confidence`` is
   counted ``low_confidence``; the others become a :class:`Signal` (id = the event's
   correlation id, from ``bus.new_id()``) inside a :class:`SignalEvent` made with
   ``bus.make`` and go through :class:`SignalDeduper` (idempotency key = snapshot id +
   strategy, cooldown ``cooldown_s``, atomic XADD). Outcomes are counted;
5. add the snapshot to the in-memory history of its symbol (after the strategies ran,
   so they compare the snapshot with what came before it).

The history is rebuilt on :meth:`start` from the last ``history_rebuild_entries`` entries
of the analytics stream (XREVRANGE), and the hysteresis memory (last chosen contract per
symbol / strategy / direction) from the last ``hysteresis_rebuild_entries`` signals, so
a restart keeps its statistics and does not flap strikes.

Writes outside the handler's ``tx``: only the dedupe script, which is idempotent on its
idempotency key (see CONVENTIONS.md), so a crash and redelivery never duplicates a signal.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime

from core.analytics.chain_cache import CHAINS
from core.analytics.validate import clean_chain
from core.bus.bus import Tx
from core.bus.events import AnalyticsEvent, BadEvent, Event, SignalEvent, decode
from core.clock.calendar import NY, Session
from core.config.loader import ConfigError
from core.config.model import Settings, StrategySettings
from core.domain.signal import Direction
from core.market.chain import OptionChain
from core.market.chain_codec import decode_chain
from core.runtime import metrics
from core.runtime.service import Context, Service
from core.signals.base import Candidate, Strategy, StrategyContext, in_window
from core.signals.dedupe import DedupeResult, Outcome, SignalDeduper
from core.signals.history import HistoryBook
from core.signals.selection import PreviousChoice
from core.signals.strategies import REGISTRY, build_strategy
from core.state.account import disabled_from, disabled_strategies

__all__ = ["SignalService", "SignalServiceOptions"]

_TOP_FLOATS = ("spot", "gex_total", "dex_total", "call_wall", "put_wall", "zero_gamma", "max_gamma_strike",
               "max_pain", "obi_l1", "obi_l5", "vpin")


@dataclass(frozen=True, slots=True)
class SignalServiceOptions:
    """Service knobs. Read from an optional ``signals:`` config section (same field names)
    when the settings model has one; otherwise these defaults apply."""

    chain_max_lag_s: float = 90.0          # chain may be this much older than the snapshot
    chain_max_lead_s: float = 180.0        # ... or this much newer (a refresh landed meanwhile)
    max_snapshot_age_s: float = 300.0      # skip snapshots this old at the clock's now
    history_rebuild_entries: int = 10_000  # analytics entries read back at start
    history_maxlen: int = 2_000            # points kept per symbol
    history_max_age_s: float = 3 * 86_400
    hysteresis_rebuild_entries: int = 1_000
    confidence_ema_alpha: float = 1.0      # 1 = raw confidence; < 1 smooths it per idea (see below)
    confidence_ema_gap_s: float = 180.0    # a gap longer than this restarts the smoothing

    @classmethod
    def from_settings(cls, settings: Settings) -> SignalServiceOptions:
        section = getattr(settings, "signals", None)
        if section is None:
            return cls()
        known = {f.name for f in dataclasses.fields(cls)}
        values = section.model_dump() if hasattr(section, "model_dump") else dict(section)
        return cls(**{k: v for k, v in values.items() if k in known})


def snapshot_problem(ev: AnalyticsEvent) -> str | None:
    """Why a snapshot is unusable, or None. NaN/inf anywhere is bad; None means 'unavailable'."""
    for name in _TOP_FLOATS:
        v = getattr(ev, name)
        if v is not None and (isinstance(v, bool) or not math.isfinite(float(v))):
            return f"{name} is not finite"
    if ev.spot <= 0:
        return "spot is not positive"
    if ev.asof <= 0:
        return "asof is missing"
    for k, v in ev.features.items():
        if v is None or not math.isfinite(float(v)):
            return f"feature {k} is not finite"
    for k, v in ev.gex_by_strike.items():
        if v is None or not math.isfinite(float(v)):
            return f"gex_by_strike[{k}] is not finite"
    return None


class SignalService(Service):
    name = "signals"
    streams = ("analytics",)
    event_types = frozenset({"analytics.snapshot"})

    def __init__(self, ctx: Context, options: SignalServiceOptions | None = None,
                 strategies: dict[str, Strategy] | None = None) -> None:
        super().__init__(ctx)
        self.options = options or SignalServiceOptions.from_settings(self.settings)
        self.history = HistoryBook(self.options.history_maxlen, self.options.history_max_age_s)
        self.strategies: dict[str, Strategy] = (strategies if strategies is not None
                                                else self._build_strategies())
        self.deduper = SignalDeduper(self.bus, idempotency_ttl_s=self.settings.redis.processed_ttl_s)
        self.previous: dict[tuple[str, str, Direction], PreviousChoice] = {}
        self.counts: Counter[str] = Counter()
        self._ema: dict[tuple[str, str, Direction], tuple[float, int]] = {}
        self._sessions: dict[date, tuple[Session | None, date | None]] = {}

    # ---------------------------------------------------------------- setup
    def _build_strategies(self) -> dict[str, Strategy]:
        out: dict[str, Strategy] = {}
        for name in sorted(self.settings.strategies):
            if name not in REGISTRY:
                self.log.warning("strategy %r in config has no implementation; known: %s", name,
                                 ", ".join(sorted(REGISTRY)))
                continue
            params = getattr(self.settings.strategies[name], "params", None) or {}
            try:
                out[name] = build_strategy(name, params)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"strategies.{name}.params: {exc}") from None
        return out

    async def start(self) -> None:
        await self.rebuild()

    async def rebuild(self) -> None:
        """History from the analytics stream, hysteresis memory from the signals stream."""
        n = 0
        raw = await self.redis.xrevrange(self.keys.stream(AnalyticsEvent.STREAM),
                                         count=self.options.history_rebuild_entries)
        for _eid, fields in reversed(raw or []):
            if not fields:
                continue
            try:
                ev = decode(fields)
            except BadEvent:
                continue
            if isinstance(ev, AnalyticsEvent) and snapshot_problem(ev) is None and self.history.add_event(ev):
                n += 1
        m = 0
        raw = await self.redis.xrevrange(self.keys.stream(SignalEvent.STREAM),
                                         count=self.options.hysteresis_rebuild_entries)
        for _eid, fields in raw or []:  # newest first: the first seen per key wins
            if not fields:
                continue
            try:
                ev = decode(fields)
            except BadEvent:
                continue
            if not isinstance(ev, SignalEvent):
                continue
            s = ev.signal
            d = s.implied_direction()
            ins = s.instrument
            if d is None or ins.expiry is None or ins.strike is None:
                continue
            key = (s.symbol, s.strategy, d)
            if key not in self.previous:
                self.previous[key] = PreviousChoice(ins.expiry, float(ins.strike))
                m += 1
        self.log.info("rebuilt history points=%d symbols=%d hysteresis=%d strategies=%s", n,
                      len(self.history.symbols()), m, ",".join(self.strategies))

    # ---------------------------------------------------------------- helpers
    def _count(self, reason: str, n: int = 1) -> None:
        self.counts[reason] += n
        metrics.REJECTED.labels(self.name, reason).inc(n)

    def _session(self, now: datetime) -> tuple[Session | None, date | None]:
        day = now.astimezone(NY).date()
        hit = self._sessions.get(day)
        if hit is None:
            cal = self.ctx.calendar
            if cal.is_session(day):
                hit = (cal.session(day), cal.next_session(day))
            else:
                hit = (None, None)
            self._sessions = {day: hit}
        return hit

    def settings_for(self, name: str) -> StrategySettings | None:
        return self.settings.strategies.get(name)

    def wanted_strategies(self, symbol: str, now: datetime) -> list[tuple[str, Strategy, StrategySettings]]:
        """The strategies the config runs on ``symbol`` at ``now`` (before the run-time switches)."""
        session, _next = self._session(now)
        if session is None:
            return []
        wanted = []
        for name, strat in self.strategies.items():
            cfg = self.settings_for(name)
            if cfg is None or symbol not in cfg.symbols or not in_window(now, cfg.window, session):
                continue
            wanted.append((name, strat, cfg))
        return wanted

    async def active_strategies(self, symbol: str,
                                now: datetime) -> list[tuple[str, Strategy, StrategySettings]]:
        wanted = self.wanted_strategies(symbol, now)
        if not wanted:
            return []
        off = set(await disabled_strategies(self.redis, self.keys, self.settings))
        return [w for w in wanted if w[0] not in off]

    async def _read_state(self, ev: AnalyticsEvent, stale: bool) -> tuple[dict, set[str], OptionChain | bytes | str | None]:
        """The strategy switches, the held contracts and the chain, in ONE round trip.

        Switches and watch set have other writers (overseer / Telegram bot; positions), so they are read
        for every snapshot, not cached. The chain is the one this snapshot was computed from when the
        analytics service of this process decoded it (``CHAINS``; immutable per asof): no GET then.
        Otherwise its raw text (or None when absent; not read at all for a stale snapshot)."""
        key = self.keys.snapshot("chain", ev.symbol)
        chain = None if stale else CHAINS.get(key, ev.asof)
        skip_held = getattr(self.settings.signals, "skip_held_contracts", True)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.hash("strategies"))
        if skip_held and not stale:
            pipe.hkeys(self.keys.hash("watch"))
        if chain is None and not stale:
            pipe.get(key)
        res = await pipe.execute()
        held = set(res[1]) if skip_held and not stale else set()
        if chain is None and not stale:
            return res[0], held, res[-1]
        return res[0], held, chain

    def load_chain(self, ev: AnalyticsEvent, raw: OptionChain | bytes | str | None) -> OptionChain | None:
        """The cleaned chain for ``ev`` from a cached chain or the chain key's raw text; None (counted)
        when absent, undecodable, of another symbol or too far from the snapshot's asof."""
        if raw is None:
            self._count("chain_missing")
            return None
        try:
            chain = raw if isinstance(raw, OptionChain) else decode_chain(
                raw.decode() if isinstance(raw, bytes) else raw)
        except (ValueError, KeyError, TypeError) as exc:
            self._count("bad_chain")
            self.log.warning("symbol=%s chain snapshot undecodable: %s", ev.symbol, exc)
            return None
        if chain.symbol != ev.symbol or chain.asof.tzinfo is None:
            self._count("bad_chain")
            return None
        lag_ms = ev.asof - int(chain.asof.timestamp() * 1000)
        if lag_ms > self.options.chain_max_lag_s * 1000 or -lag_ms > self.options.chain_max_lead_s * 1000:
            self._count("chain_stale")
            self.log.info("symbol=%s snapshot=%s chain asof %s is stale vs snapshot (%+.0f s)", ev.symbol,
                          ev.snapshot_id, chain.asof.isoformat(), lag_ms / 1000)
            return None
        cleaned, _rejects = clean_chain(chain, chain.asof)
        if len(cleaned) == 0:
            self._count("bad_chain")
            return None
        return cleaned

    # ---------------------------------------------------------------- handling
    async def handle(self, event: Event, tx: Tx) -> None:
        if not isinstance(event, AnalyticsEvent):
            return
        # a failed handling is retried: it must see the memory it saw the first time (hysteresis,
        # smoothing, history without its own point), so what it changed is put back
        previous, ema = dict(self.previous), dict(self._ema)
        history = self.history.get(event.symbol)
        held = history.holds(event.snapshot_id)
        try:
            await self.process(event)
        except BaseException:
            self.previous, self._ema = previous, ema
            if not held:
                history.discard(event.snapshot_id)
            raise

    async def process(self, ev: AnalyticsEvent) -> list[tuple[Candidate, DedupeResult | None]]:
        """Run the strategies on one snapshot; returns (candidate, dedupe result or None)."""
        problem = snapshot_problem(ev)
        if problem is not None:
            self._count("bad_snapshot")
            self.log.warning("symbol=%s snapshot=%s rejected: %s", ev.symbol, ev.snapshot_id, problem)
            return []
        try:
            return await self._run(ev)
        finally:
            self.history.add_event(ev)

    async def _run(self, ev: AnalyticsEvent) -> list[tuple[Candidate, DedupeResult | None]]:
        now = self.clock.now()
        wanted = self.wanted_strategies(ev.symbol, now)
        if not wanted:
            return []
        stale = self.clock.ms() - ev.asof > self.options.max_snapshot_age_s * 1000
        switches, held, raw_chain = await self._read_state(ev, stale)
        off = set(disabled_from(switches, self.settings))
        active = [w for w in wanted if w[0] not in off]
        if not active:
            return []
        if stale:
            self._count("snapshot_stale")
            return []
        chain = self.load_chain(ev, raw_chain)
        if chain is None:
            return []
        session, next_session = self._session(now)
        history = self.history.get(ev.symbol)
        out: list[tuple[Candidate, DedupeResult | None]] = []
        for name, strat, cfg in active:
            prev = {d: p for (sym, sn, d), p in self.previous.items() if sym == ev.symbol and sn == name}
            sctx = StrategyContext(now=now, settings=cfg, session=session, history=history, previous=prev,
                                   next_session=next_session, rate=self.settings.market.rate,
                                   dividend_yield=self.settings.market.dividend_yield)
            cand = strat.evaluate(ev, chain, sctx)
            if cand is None:
                self.counts[f"silent:{name}"] += 1
                continue
            self.previous[(ev.symbol, name, cand.direction)] = PreviousChoice(cand.contract.expiry,
                                                                              cand.contract.strike)
            conf = self._smooth((ev.symbol, name, cand.direction), cand.confidence, ev.asof)
            if conf != cand.confidence:
                cand = dataclasses.replace(cand, confidence=conf)
            if cand.contract.key in held:
                self._count("already_held")
                out.append((cand, None))
                continue
            if cand.confidence < cfg.min_confidence:
                self._count("low_confidence")
                out.append((cand, None))
                continue
            result = await self.emit(cand, cfg, ev)
            out.append((cand, result))
        return out

    def _smooth(self, key: tuple[str, str, Direction], conf: float, ts_ms: int) -> float:
        """Exponential smoothing of an idea's confidence across consecutive snapshots.

        ``alpha = 1`` (default) returns ``conf`` unchanged. With ``alpha < 1`` the value is
        ``alpha x conf + (1 - alpha) x previous`` while the idea keeps firing (gaps up to
        ``confidence_ema_gap_s``), so minute-to-minute noise in the inputs does not pass the
        dedupe's material-change test again and again.
        """
        a = self.options.confidence_ema_alpha
        if a >= 1.0:
            return conf
        last = self._ema.get(key)
        if last is not None and 0 <= ts_ms - last[1] <= self.options.confidence_ema_gap_s * 1000:
            conf = round(a * conf + (1.0 - a) * last[0], 1)
        self._ema[key] = (conf, ts_ms)
        return conf

    async def emit(self, cand: Candidate, cfg: StrategySettings, ev: AnalyticsEvent) -> DedupeResult:
        sid = self.bus.new_id()
        signal = cand.to_signal(sid, self.clock.now(), cfg.qty)
        event = self.bus.make(SignalEvent, correlation_id=signal.id, signal=signal)
        result = await self.deduper.submit(event, cooldown_s=cfg.cooldown_s,
                                           idempotency=f"{ev.snapshot_id}:{cand.strategy}")
        if result.outcome == Outcome.EMITTED:
            self.counts[result.outcome.value] += 1
            self.log.info("signal=%s strategy=%s symbol=%s %s %s conf=%.1f limit=%.2f entry=%s",
                          signal.id, cand.strategy, cand.symbol, cand.direction.value, cand.contract.occ,
                          cand.confidence, cand.limit, result.detail)
        else:
            self._count(result.outcome.value)
        return result
