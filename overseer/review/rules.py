"""The deterministic half of a review: ``core.risk.check_signal`` plus the overseer's own
data-freshness and contract-sanity checks. Codes are :class:`core.domain.reasons.Reason`.

Overseer checks (only for a signal that validates as a :class:`Signal`):

* STALE_DATA  the analytics snapshot or the option-chain snapshot of the symbol exists and
              its ``asof`` is older than ``overseer.stale_feed_s["chains"]`` (the model would
              be shown stale analytics)
* BAD_INPUT   the limit is above the ask by more than ``risk.max_spread_pct_of_mid`` % of mid
              (a fat-fingered or runaway price)
* BAD_INPUT   the stated horizon contradicts the expiry (0dte needs 0 trading days to expiry,
              1dte needs 1, swing needs 2 or more)
* BAD_INPUT   the strike is more than 50 % away from the underlying's spot (signal.spot, else
              the analytics snapshot's spot)

"More than" is strictly over, exact at the boundary (:mod:`core.risk.compare`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from core.config.model import Settings
from core.domain.reasons import Reason
from core.domain.signal import Horizon, Signal
from core.risk import RiskDecision, RiskLimits, RiskState, check_signal, check_signal_dict, trading_days_until
from core.risk.compare import exceeds
from core.risk.sessions import NY
from overseer._util import parse_ts_ms

MAX_STRIKE_DISTANCE = 0.5  # |strike / spot - 1|


def overseer_checks(
    signal: Signal,
    now: datetime,
    limits: RiskLimits,
    settings: Settings,
    *,
    analytics: Mapping[str, Any] | None = None,
    chain: Mapping[str, Any] | None = None,
) -> dict[Reason, list[str]]:
    out: dict[Reason, list[str]] = {}

    def add(reason: Reason, text: str) -> None:
        out.setdefault(reason, []).append(text)

    now_ms = int(now.timestamp() * 1000)
    limit_s = float(settings.overseer.stale_feed_s.get("chains", 180.0))
    for name, snap in (("analytics", analytics), ("chain", chain)):
        if snap is None:
            continue
        asof = parse_ts_ms(snap.get("asof"))
        if asof is not None and exceeds((now_ms - asof) / 1000.0, limit_s):
            add(
                Reason.STALE_DATA,
                f"{name} snapshot is {(now_ms - asof) / 1000.0:.0f}s old (max {limit_s:g}s)",
            )

    bid, ask = signal.quote.bid, signal.quote.ask
    mid = (bid + ask) / 2.0
    if mid > 0 and exceeds(signal.limit, ask + mid * limits.max_spread_pct_of_mid / 100.0):
        add(
            Reason.BAD_INPUT,
            f"limit {signal.limit:g} is far above the ask {ask:g} "
            f"(more than {limits.max_spread_pct_of_mid:g}% of mid)",
        )

    ins = signal.instrument
    if signal.horizon is not None and ins.expiry is not None:
        dte = trading_days_until(now.astimezone(NY).date(), ins.expiry)
        ok = {Horizon.ZERO_DTE: dte == 0, Horizon.ONE_DTE: dte == 1, Horizon.SWING: dte >= 2}[signal.horizon]
        if dte >= 0 and not ok:
            add(
                Reason.BAD_INPUT,
                f"horizon {signal.horizon.value} contradicts expiry {ins.expiry} ({dte} trading days away)",
            )

    spot = signal.spot
    if spot is None and analytics is not None:
        try:
            spot = float(analytics.get("spot"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            spot = None
    if (
        spot is not None
        and spot > 0
        and ins.strike is not None
        and exceeds(abs(ins.strike / spot - 1.0), MAX_STRIKE_DISTANCE)
    ):
        add(
            Reason.BAD_INPUT,
            f"strike {ins.strike:g} is more than {MAX_STRIKE_DISTANCE:.0%} away from spot {spot:g}",
        )
    return out


def merge(decision: RiskDecision, extra: Mapping[Reason, list[str]]) -> RiskDecision:
    if not extra:
        return decision
    details: dict[Reason, str] = dict(decision.details)
    for reason, texts in extra.items():
        joined = "; ".join(dict.fromkeys(texts))
        details[reason] = f"{details[reason]}; {joined}" if reason in details else joined
    return RiskDecision.model_validate({"reasons": list(details), "details": details})


def hard_rules(
    signal: Signal | Mapping[str, Any],
    state: RiskState | Mapping[str, Any] | None,
    limits: RiskLimits,
    now: datetime,
    settings: Settings,
    *,
    analytics: Mapping[str, Any] | None = None,
    chain: Mapping[str, Any] | None = None,
) -> tuple[RiskDecision, Signal | None]:
    """(decision, the validated Signal or None). Never raises."""
    if isinstance(signal, Signal):
        sig: Signal | None = signal
        decision = check_signal(signal, state, limits, now)
    else:
        decision = check_signal_dict(signal, state, limits, now)
        try:
            sig = Signal.model_validate(dict(signal)) if isinstance(signal, Mapping) else None
        except Exception:  # noqa: BLE001 - invalid signal: BAD_INPUT is already in the decision
            sig = None
    if sig is not None:
        try:
            decision = merge(
                decision, overseer_checks(sig, now, limits, settings, analytics=analytics, chain=chain)
            )
        except Exception as exc:  # noqa: BLE001 - fail closed
            decision = merge(decision, {Reason.BAD_INPUT: [f"overseer checks failed: {type(exc).__name__}"]})
    return decision, sig
