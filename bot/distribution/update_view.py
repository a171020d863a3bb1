"""What an update post (stop moved, scale-out, close) says: what changed and why.

Premium gets the change itself: the previous posted stop and the new one, the rule that moved
it in words, the profit locked (or the risk left) per contract, and how many smaller moves were
held back since the previous stop update (``coalesce.py``). Basic gets a sentence about the stop
derived from stop vs entry price only (above entry / at breakeven / below entry), never a price
of the stop. Neither gets the entry rationale again: that belongs to the entry post.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from core.bus.events import PositionEvent

MULTIPLIER = 100.0  # equity / index options: one contract = 100 shares (as render.result_pct)

# exit-plan reason codes (core/positions/exit_plan.py) and desk actions, in words
REASON_WORDS = {
    "trail_activated": "the trailing stop switched on: the trade reached its trail activation gain",
    "trail_high_water": "the trailing stop followed a new high",
    "breakeven_lock": "the stop was locked at breakeven",
    "hard_stop": "the hard stop was hit",
    "trailing_stop": "the trailing stop was hit",
    "flat_eod": "flat before the close, same-day trade",
    "expiry_day_flat": "closed on expiry day",
    "earnings": "closed ahead of earnings",
    "time_stop": "time stop: no progress after the allowed sessions",
    "close": "closed by the desk",
    "flatten": "the desk flattened all positions",
}
_TARGET = re.compile(r"^target (\S+) \+(\d+)%$")


@dataclass(frozen=True)
class StopContext:
    """What subscribers saw of the stop before this post (kept per trade by ``coalesce.py``)."""

    previous_stop: float | None  # the last posted stop (None: none, or not known)
    known: bool  # False: the trade is not tracked (no entry seen), the previous stop is unknown
    held: int = 0  # stop moves held back since the previous posted stop


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def reason_words(reason: str, clean: Any) -> str:
    """A rule code in words; a target scale-out as "target t1 reached, +50%"; anything else as
    given (cleaned outside text)."""
    r = (reason or "").strip()
    if r in REASON_WORDS:
        return REASON_WORDS[r]
    m = _TARGET.match(r)
    if m:
        return f"target {clean(m.group(1), 20)} reached, +{m.group(2)}%"
    return clean(r, 200) or "—"


def stop_vs_entry(stop: float | None, entry: float, reason: str = "") -> str:
    """none | above | breakeven | below (breakeven: within half a cent of the entry price, or the
    exit plan's breakeven lock, which sits a tick or two above it to cover commissions)."""
    if stop is None or not _finite(stop):
        return "none"
    if abs(stop - entry) < 0.005 or (reason == "breakeven_lock" and stop >= entry):
        return "breakeven"
    return "above" if stop > entry else "below"


BASIC_STOP_MOVED = {
    "above": "Stop raised above the entry price: if it is hit, the trade closes at a gain (before fees). "
             "It stays open.",
    "breakeven": "Stop raised to breakeven: the trade no longer risks a loss (before fees). It stays open.",
    "below": "Stop tightened: less is at risk, the trade stays open.",
    "none": "The stop was updated; the trade stays open.",
}
BASIC_STOP_STATE = {
    "above": "above entry (a gain locked in)",
    "breakeven": "at breakeven",
    "below": "below entry",
    "none": "not set",
}


def basic_update_fields(ev: PositionEvent) -> dict[str, Any]:
    """Qualitative stop wording for basic: derived from stop vs entry, no stop price."""
    where = stop_vs_entry(ev.stop, ev.entry_price, ev.reason)
    return {"stop_news": BASIC_STOP_MOVED[where], "stop_state": BASIC_STOP_STATE[where]}


def premium_update_fields(ev: PositionEvent, ctx: StopContext | None, money: Any, signed_money: Any,
                          clean: Any) -> dict[str, Any]:
    """What changed and why, for premium updates (formatters passed in from render.py, which imports
    this module)."""
    prev = ctx.previous_stop if ctx is not None else None
    if ctx is None or not ctx.known:
        before = "not known"
    else:
        before = money(prev) if prev is not None else "none"
    now = money(ev.stop) if ev.stop is not None else "none"
    held = ctx.held if ctx is not None else 0
    moves = f"{held} move{'' if held == 1 else 's'} since then not posted" if held else ""
    changed = ctx is not None and ctx.known and prev != ev.stop
    extras = [x for x in (f"last posted {before}" if changed else "", moves) if x]
    if ev.stop is None:
        if_hit = "—"
    else:
        d = (ev.stop - ev.entry_price) * MULTIPLIER
        if_hit = ("breakeven" if abs(d) < 0.5 else f"{signed_money(d)} per contract locked in" if d > 0
                  else f"{signed_money(d)} per contract at most")
    return {
        "stop_before": f"{before} ({moves})" if moves else before,
        "stop_now": f"{now} ({'; '.join(extras)})" if extras else now,
        "stop_if_hit": if_hit,
        "reason_words": reason_words(ev.reason, clean),
    }
