"""Quote sanity at the market service: the last gate before a quote goes on the bus.

Decision (what a quote must be to be published):

* every price finite (no NaN, no infinity) -> else ``non_finite``;
* an underlying's bid and ask > 0 (its last >= 0: 0 = no trade yet) -> else ``non_positive``;
* an option's ask > 0 and bid >= 0 -> else ``non_positive`` / ``negative``. **A zero bid is
  accepted**: deep out-of-the-money options are routinely bid at nothing; the position manager
  and the paper broker treat such a contract as unsellable at that tick, not as bad data;
* bid <= ask -> else ``crossed``. **bid == ask is accepted** (a locked market: momentary, and
  a price both ways);
* sizes finite and >= 0 -> else ``bad_size``;
* a depth book whose levels are not finite positive prices with sizes >= 0, or whose best bid
  is at or above its best ask, is dropped (``bad_book`` / ``crossed_book``); the quote itself
  is still published, without depth.

Each rejection is counted by reason (``REJECTED{service="market", reason}`` and the Redis hash
``rejections``, field ``market:<reason>``, shown by ``main.py status``) and logged at most once
per contract per minute of the service clock, with the count held back in between. A
rejection only drops that quote: the rest of the tick (other symbols, the chain, the other
watched contracts) is published as usual.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence

from core.runtime import metrics

log = logging.getLogger("quanticity.market")
LOG_EVERY_MS = 60_000
SERVICE = "market"


def _finite(*xs: float) -> bool:
    for x in xs:  # a loop, not all(<generator>): called for every quote and book level each tick
        if not isinstance(x, (int, float)) or not math.isfinite(x):
            return False
    return True


def underlying_problem(bid: float, ask: float, last: float, bid_size: float, ask_size: float) -> str | None:
    """Why an underlying quote may not be published (None: it may)."""
    if not _finite(bid, ask, last):
        return "non_finite"
    if bid <= 0 or ask <= 0 or last < 0:
        return "non_positive"
    if bid > ask:
        return "crossed"
    if not _finite(bid_size, ask_size) or bid_size < 0 or ask_size < 0:
        return "bad_size"
    return None


def option_problem(bid: float, ask: float, bid_size: float, ask_size: float) -> str | None:
    """Why a watched option's quote may not be published (None: it may). A zero bid may."""
    if not _finite(bid, ask):
        return "non_finite"
    if ask <= 0:
        return "non_positive"
    if bid < 0:
        return "negative"
    if bid > ask:
        return "crossed"
    if not _finite(bid_size, ask_size) or bid_size < 0 or ask_size < 0:
        return "bad_size"
    return None


def book_problem(bids: Sequence[tuple[float, float]], asks: Sequence[tuple[float, float]]) -> str | None:
    """Why a depth book may not ride with the quote (None: it may)."""
    for price, size in (*bids, *asks):
        if not _finite(price, size) or price <= 0 or size < 0:
            return "bad_book"
    if bids and asks and bids[0][0] >= asks[0][0]:
        return "crossed_book"
    return None


class QuoteRejections:
    """Counts rejections per reason and throttles their log lines per contract."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._logged: dict[str, tuple[int, int]] = {}  # what -> (last logged ms, rejected since)

    def reject(self, what: str, reason: str, now_ms: int, detail: str = "") -> None:
        """Count one rejection of ``what`` (a symbol or contract key) for ``reason``."""
        self.counts[reason] += 1
        metrics.REJECTED.labels(SERVICE, reason).inc()
        last, quiet = self._logged.get(what, (None, 0))
        if last is None or now_ms - last >= LOG_EVERY_MS:
            self._logged[what] = (now_ms, 0)
            log.warning("market: rejected quote of %s: %s %s(%d more since the last report; counted, logged at "
                        "most once a minute per contract)", what, reason, f"({detail}) " if detail else "", quiet)
        else:
            self._logged[what] = (last, quiet + 1)

    def drain(self) -> Counter[str]:
        """Counts since the previous drain (the service adds them to the Redis hash)."""
        out, self.counts = self.counts, Counter()
        return out
