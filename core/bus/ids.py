"""Event and entity ids: ULIDs (time-sortable, 26 chars, Crockford base32).

In demo/replay the random part comes from a seeded generator and the time from
the simulated clock, so a run's ids are reproducible byte for byte. Within one
millisecond ids are monotonic, so sorting ids gives creation order.
"""

from __future__ import annotations

import os
import random

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _encode(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


class IdFactory:
    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed) if seed is not None else None
        self._last_ms = -1
        self._last_rand = 0

    def _random80(self) -> int:
        if self._rng is not None:
            return self._rng.getrandbits(80)
        return int.from_bytes(os.urandom(10), "big")

    def new(self, ts_ms: int) -> str:
        if ts_ms <= self._last_ms:
            ts_ms = self._last_ms
            self._last_rand += 1
        else:
            self._last_ms = ts_ms
            self._last_rand = self._random80() & ~((1 << 16) - 1)  # room to increment
        return _encode(ts_ms, 10) + _encode(self._last_rand & ((1 << 80) - 1), 16)
