"""Which ``reqMktData`` / ``reqMktDepth`` lines the IBKR market source holds, within IB's line budget.

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
full rotation within one ``market.chain_seconds`` (60 s). :meth:`MarketLines.budget` returns
these numbers for the running configuration.

**Watched contracts** (working orders and open positions) always stream, before any chain line.

**Depth**: at most ``ibkr.depth_subscriptions`` ``reqMktDepth`` (SMART, ``market.depth_levels``
rows) at a time, rotated over the stock/ETF symbols every ``ibkr.depth_rotate_s`` (service
clock).
"""

from __future__ import annotations

import math
from typing import Any

from ib_async import Contract

from core.ibkr.market_state import MarketState

OPTION_TICKS = "100,101,106"
MAX_DWELL_TICKS = 3  # a rotation batch moves on after this many ticks even if some lines never answered


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



class MarketLines(MarketState):
    """Chain rotation, the wanted lines, and the depth rotation of the IBKR market source."""

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

