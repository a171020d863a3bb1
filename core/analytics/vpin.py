"""VPIN (volume-synchronized probability of informed trading), streaming.

Easley, Lopez de Prado & O'Hara (2012) with **bulk volume classification** (BVC):

* Input is a stream of time bars ``(dP, V)``: the bar's price change and volume.
* Buy fraction of a bar = ``Phi(dP / sigma_dP)``, where ``sigma_dP`` is the standard
  deviation of bar price changes (given, or estimated online from every bar seen so
  far, Welford). With ``sigma_dP == 0`` the fraction is 1, 0.5 or 0 by the sign of dP.
* Volume fills equal-size buckets of ``bucket_volume`` (a bar may complete several
  buckets; its volume is split pro rata with the same buy fraction).
* ``VPIN = sum_{last n buckets} |V_buy - V_sell| / (n * bucket_volume)``, in [0, 1].
* Conventional sizing: ``bucket_volume = average daily volume / 50`` and
  ``n_buckets = 50`` (one day of buckets): see :meth:`Vpin.from_daily_volume`.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["Vpin", "bucket_volume_for"]


def bucket_volume_for(average_daily_volume: float, buckets_per_day: int = 50) -> float:
    """Bucket size = average daily volume / buckets per day (default 50)."""
    if average_daily_volume <= 0 or buckets_per_day <= 0:
        raise ValueError("average_daily_volume and buckets_per_day must be positive")
    return float(average_daily_volume) / buckets_per_day


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


class Vpin:
    """Streaming VPIN over the last ``n_buckets`` full volume buckets.

    Args:
        bucket_volume: volume per bucket (> 0), typically ADV / 50.
        n_buckets: buckets in the rolling window (default 50).
        sigma_dp: fixed standard deviation of bar price changes; ``None`` estimates
            it online from all bars seen so far (including the current one).
    """

    def __init__(self, bucket_volume: float, n_buckets: int = 50, sigma_dp: float | None = None) -> None:
        if not bucket_volume > 0 or not math.isfinite(bucket_volume):
            raise ValueError("bucket_volume must be a positive finite number")
        if n_buckets < 1:
            raise ValueError("n_buckets must be >= 1")
        if sigma_dp is not None and not (sigma_dp >= 0 and math.isfinite(sigma_dp)):
            raise ValueError("sigma_dp must be a non-negative finite number or None")
        self.bucket_volume = float(bucket_volume)
        self.n_buckets = int(n_buckets)
        self._fixed_sigma = sigma_dp
        self._imbalances: deque[float] = deque(maxlen=self.n_buckets)
        self._fill = 0.0        # volume already in the current (open) bucket
        self._fill_buy = 0.0    # buy volume already in the current bucket
        self._n = 0             # Welford state for sigma_dP
        self._mean = 0.0
        self._m2 = 0.0
        self.buckets_completed = 0

    @classmethod
    def from_daily_volume(cls, average_daily_volume: float, n_buckets: int = 50,
                          sigma_dp: float | None = None) -> Vpin:
        """Bucket size = ADV / ``n_buckets`` (one trading day of buckets in the window)."""
        return cls(bucket_volume_for(average_daily_volume, n_buckets), n_buckets, sigma_dp)

    @property
    def sigma(self) -> float:
        """Standard deviation of price changes currently used for classification."""
        if self._fixed_sigma is not None:
            return self._fixed_sigma
        return math.sqrt(self._m2 / (self._n - 1)) if self._n > 1 else 0.0

    def buy_fraction(self, price_change: float) -> float:
        """BVC buy fraction ``Phi(dP / sigma)`` with the current sigma."""
        s = self.sigma
        if s > 0.0:
            return _phi(price_change / s)
        return 1.0 if price_change > 0 else (0.0 if price_change < 0 else 0.5)

    def _push(self, imbalance: float) -> None:
        self._imbalances.append(imbalance)  # deque(maxlen) drops the oldest
        self.buckets_completed += 1

    def update(self, price_change: float, volume: float) -> float | None:
        """Add one time bar; returns the new :attr:`value`.

        Bars with non-finite inputs or non-positive volume are ignored.
        """
        if not (math.isfinite(price_change) and math.isfinite(volume)) or volume <= 0:
            return self.value
        if self._fixed_sigma is None:
            self._n += 1
            delta = price_change - self._mean
            self._mean += delta / self._n
            self._m2 += delta * (price_change - self._mean)
        frac = self.buy_fraction(price_change)
        bv = self.bucket_volume
        remaining = float(volume)
        # Complete the open bucket first.
        room = bv - self._fill
        if remaining < room:
            self._fill += remaining
            self._fill_buy += remaining * frac
            return self.value
        buy = self._fill_buy + room * frac
        self._push(abs(2.0 * buy - bv))
        remaining -= room
        # Whole buckets made of this bar alone (all with the same imbalance); only the
        # last n_buckets of them can stay in the window.
        full = int(remaining // bv)
        if full:
            imb = abs(2.0 * frac - 1.0) * bv
            for _ in range(min(full, self.n_buckets)):
                self._push(imb)
            self.buckets_completed += full - min(full, self.n_buckets)
            remaining -= full * bv
        self._fill = remaining
        self._fill_buy = remaining * frac
        return self.value

    @property
    def value(self) -> float | None:
        """VPIN over the last ``n_buckets`` full buckets; ``None`` until that many exist."""
        if len(self._imbalances) < self.n_buckets:
            return None
        v = math.fsum(self._imbalances) / (self.n_buckets * self.bucket_volume)
        return min(1.0, max(0.0, v))
