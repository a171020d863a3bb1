"""AnalyticsService: dealer positioning and flow metrics per symbol, on the bus.

Consumes ``chains`` (chain refreshes) and ``flow`` (tape, option flow, closing
imbalance). Flow updates rolling windows and VPIN; each chain refresh produces
one :class:`AnalyticsEvent` (stream ``analytics``; latest also in the
``analytics`` snapshot key) with GEX/DEX, walls, flip, max pain, book imbalance,
liquidity grade and the strategy features listed in :mod:`core.analytics.features`.
Rows are validated per use (:mod:`core.analytics.chain_analysis`, shared with the ``analytics``
CLI): a row counts for max pain, GEX, DEX and the flip as far as it has what each needs (IV
solved where the vendor gave none); ``contracts_rejected`` counts the rows no use could take,
``rejected_by_use`` every rejection by use and reason (also counted in the rejection metric as
``chain_<use>_<reason>``). A chain with no usable row yields no snapshot, counted as a rejection. The quote and reference snapshots
it reads are validated (``core.market.snapshots``): a bad one is ignored, counted, logged.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from core.analytics.book import imbalance_l1, imbalance_l5
from core.analytics.chain_analysis import AnalysisSettings, ChainAnalysis, analyze_chain
from core.analytics.chain_cache import CHAINS
from core.analytics.features import FlowWindow, chain_features
from core.analytics.liquidity import liquidity_grades
from core.analytics.vpin import Vpin
from core.bus.bus import Tx
from core.bus.events import AnalyticsEvent, ChainEvent, Event, FlowEvent, ImbalanceEvent
from core.clock.calendar import NY
from core.market.chain import displayed_size
from core.market.chain_codec import decode_chain
from core.market.sim.config import DEFAULT_SPECS
from core.market.snapshots import QuoteSnapshot, ReferenceSnapshot, read_snapshot
from core.runtime import metrics
from core.runtime.service import Context, Service

DEFAULT_ADV = 20e6


@dataclass
class _SymbolState:
    flow: FlowWindow = field(default_factory=FlowWindow)
    vpin: Vpin | None = None
    imbalance: ImbalanceEvent | None = None
    prices: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=400))


class AnalyticsService(Service):
    name = "analytics"
    streams = ("chains", "flow")
    event_types = frozenset({"market.chain", "market.flow", "market.imbalance"})

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._state: dict[str, _SymbolState] = {}

    def _sym(self, symbol: str) -> _SymbolState:
        st = self._state.get(symbol)
        if st is None:
            spec = DEFAULT_SPECS.get(symbol)
            adv = float(spec.adv_shares) if spec is not None else DEFAULT_ADV
            # an index (SPX) has no share volume: no VPIN
            vpin = Vpin.from_daily_volume(adv, self.settings.analytics.vpin_buckets) if adv > 0 else None
            st = _SymbolState(vpin=vpin)
            self._state[symbol] = st
        return st

    async def handle(self, event: Event, tx: Tx) -> None:
        if isinstance(event, FlowEvent):
            st = self._sym(event.symbol)
            st.flow.add(event)
            if event.last > 0:
                st.prices.append((event.ts, event.last))
            if st.vpin is not None and event.volume > 0:
                st.vpin.update(event.price_change, event.volume)
        elif isinstance(event, ImbalanceEvent):
            self._sym(event.symbol).imbalance = event
        elif isinstance(event, ChainEvent):
            await self._chain(event, tx)

    async def _chain(self, ev: ChainEvent, tx: Tx) -> None:
        # the chain and the quote / reference snapshots it is read with: one MGET, one round trip
        raw, raw_quote, raw_ref = await self.redis.mget(
            [ev.snapshot_key, self.keys.snapshot("quote", ev.symbol), self.keys.snapshot("reference", ev.symbol)])
        if raw is None:
            metrics.REJECTED.labels(self.name, "chain_missing").inc()
            self.log.warning("chain snapshot %s missing for %s (expired?)", ev.snapshot_key, ev.symbol)
            return
        try:
            # kept for the signal service, which needs this chain again for the snapshot made from it
            chain = CHAINS.put(ev.snapshot_key, decode_chain(raw))
        except (ValueError, KeyError, TypeError) as exc:
            metrics.REJECTED.labels(self.name, "chain_malformed").inc()
            self.log.warning("chain snapshot for %s malformed: %s", ev.symbol, exc)
            return
        now = self.clock.now()
        an = analyze_chain(chain, now, AnalysisSettings.from_settings(self.settings))
        for use, reasons in an.uses.rejected.items():
            for reason, n in reasons.items():
                metrics.REJECTED.labels(self.name, f"chain_{use}_{reason}").inc(n)
        if an.rows_used == 0 or not np.isfinite(chain.spot) or chain.spot <= 0:
            metrics.REJECTED.labels(self.name, "chain_unusable").inc()
            return
        clean, clean_expo = an.clean, an.clean_exposure   # features and liquidity: the all-checks rows
        st = self._sym(ev.symbol)
        q = read_snapshot(raw_quote, QuoteSnapshot, self.name, ev.symbol)
        obi1 = obi5 = None
        if q and q.get("bid_sizes") and q.get("ask_sizes"):
            bs, asz = np.asarray(q["bid_sizes"], float), np.asarray(q["ask_sizes"], float)
            obi1, obi5 = float(imbalance_l1(bs, asz)), float(imbalance_l5(bs, asz))
        ref = read_snapshot(raw_ref, ReferenceSnapshot, self.name, ev.symbol) or {}
        today: date = now.astimezone(NY).date()
        feats = chain_features(clean, clean_expo, now, ref, today)
        feats.update(st.flow.features(ev.ts, clean, clean_expo))
        feats.update(_price_changes(st.prices, ev.ts, clean.spot))
        if obi5 is not None:
            feats["depth_imbalance_5"] = round(obi5, 4)
        imb = st.imbalance
        if imb is not None and ev.ts - imb.ts <= 120_000 and imb.side != "none":
            feats["imbalance_side"] = 1.0 if imb.side == "buy" else -1.0
            feats["imbalance_shares"] = float(imb.shares)
            feats["imbalance_confidence"] = float(imb.confidence)
        grade = _front_liquidity(clean)
        expo = an.exposure
        nearest_expiry = min(expo.max_pain) if expo.max_pain else None
        snapshot_id = self.bus.new_id()
        out = tx.emit(
            AnalyticsEvent, correlation_id=f"an:{ev.symbol}", snapshot_id=snapshot_id, symbol=ev.symbol,
            spot=round(chain.spot, 4), asof=ev.asof, gex_total=_r(expo.gex_total), dex_total=_r(expo.dex_total),
            call_wall=expo.call_wall, put_wall=expo.put_wall, max_gamma_strike=expo.max_gamma_strike,
            zero_gamma=None if expo.zero_gamma is None else round(expo.zero_gamma, 4),
            max_pain=expo.max_pain.get(nearest_expiry) if nearest_expiry else None,
            obi_l1=_r(obi1, 4), obi_l5=_r(obi5, 4), vpin=_r(st.vpin.value if st.vpin else None, 4),
            liquidity_grade=grade, contracts_used=an.rows_used, contracts_rejected=an.rows_rejected,
            rate=expo.rate, dividend_yield=expo.dividend_yield, rows_by_use=an.uses.used(),
            rejected_by_use=an.uses.rejected, iv_sources=_iv_sources(an),
            gex_by_strike={f"{k:g}": round(v, 2) for k, v in expo.gex_by_strike_dict().items()},
            features={k: round(float(v), 6) for k, v in sorted(feats.items()) if v is not None and np.isfinite(v)},
        )
        tx.pipe.set(self.keys.snapshot("analytics", ev.symbol), out.model_dump_json(),
                    ex=self.settings.market.snapshot_ttl_s)


def _iv_sources(an: ChainAnalysis) -> dict[str, int]:
    """Rows priced with the vendor's IV / one solved from mid / from last (rows counted by a use)."""
    s = an.vol.summary(an.uses.any_use)
    return {k: int(v) for k, v in s.items() if k != "unsolved"}


def _r(x: float | None, nd: int = 2) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), nd)


def _price_changes(prices: deque[tuple[int, float]], now_ms: int, spot: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for minutes in (5, 15):
        cutoff = now_ms - minutes * 60_000
        past = [p for ts, p in prices if ts <= cutoff]
        if past and past[-1] > 0:
            out[f"price_change_{minutes}m_pct"] = (spot / past[-1] - 1.0) * 100.0
    return out


def _front_liquidity(chain) -> str | None:
    """Grade of the front expiry's near-the-money options (median of the 6 nearest rows)."""
    if len(chain) == 0:
        return None
    front = chain.expiry == chain.expiry.min()
    idx = np.nonzero(front)[0]
    order = idx[np.argsort(np.abs(chain.strike[idx] - chain.spot), kind="stable")[:6]]
    size = displayed_size(chain.open_interest[order])
    grades = sorted(liquidity_grades(chain.bid[order], chain.ask[order], size, size).tolist())
    return grades[len(grades) // 2] if grades else None
