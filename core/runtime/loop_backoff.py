"""The pause a runner loop takes after an error: exponential, capped, reset on success.

Decision: the first error in a row waits ``initial_s``, each further one doubles it up to
``max_s``; the next completed iteration resets it. No jitter: one process's loops are few and
they retry different things, so they do not stampede a recovering Redis together.
"""

from __future__ import annotations


class Backoff:
    def __init__(self, initial_s: float, max_s: float) -> None:
        if initial_s <= 0 or max_s < initial_s:
            raise ValueError(f"backoff needs 0 < initial ({initial_s}) <= max ({max_s})")
        self.initial_s = initial_s
        self.max_s = max_s
        self.streak = 0  # errors in a row since the last success

    def next(self) -> float:
        """Count one more error in a row; the pause to take before retrying."""
        self.streak += 1
        return min(self.max_s, self.initial_s * 2 ** min(self.streak - 1, 30))

    def reset(self) -> None:
        self.streak = 0
