"""Decoded chain snapshots, shared by the readers of the chain key inside one process.

The market service writes a symbol's latest chain to ``keys.snapshot("chain", symbol)``; the
analytics service decodes it for each :class:`~core.bus.events.ChainEvent`, and the signal service
needs the same chain again for the :class:`~core.bus.events.AnalyticsEvent` computed from it.
A chain snapshot is immutable per ``asof`` (a refresh is a new ``asof``), so its decoded form can be
kept under ``(snapshot key, asof ms)`` and handed to the second reader without a second GET and
decode. The key includes the deployment's key prefix, so two buses in one process never share
entries. A miss is always safe: the reader falls back to reading Redis.

The cached chain is shared, so its arrays are made read-only: a reader that wrote into one would
raise instead of changing what the other reader sees. Readers build new chains with ``take``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import fields

import numpy as np

from core.market.chain import OptionChain

MAX_ENTRIES = 32  # one instant's chains of every symbol (default config: 11) with room to spare


def asof_ms(chain: OptionChain) -> int:
    """The chain's asof as the ChainEvent / AnalyticsEvent carry it (ms, truncated like the market)."""
    return int(chain.asof.timestamp() * 1000)


def _freeze(chain: OptionChain) -> OptionChain:
    for f in fields(chain):
        v = getattr(chain, f.name)
        if isinstance(v, np.ndarray):
            v.flags.writeable = False
    return chain


class ChainCache:
    """A small LRU of decoded chains keyed by (snapshot key, asof ms)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[tuple[str, int], OptionChain] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str, asof: int) -> OptionChain | None:
        chain = self._items.get((key, asof))
        if chain is None:
            self.misses += 1
            return None
        self._items.move_to_end((key, asof))
        self.hits += 1
        return chain

    def put(self, key: str, chain: OptionChain) -> OptionChain:
        """Keep ``chain`` (made read-only) under its own asof; returns it."""
        ident = (key, asof_ms(chain))
        self._items[ident] = _freeze(chain)
        self._items.move_to_end(ident)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)
        return chain

    def clear(self) -> None:
        self._items.clear()


CHAINS = ChainCache()
