"""What the IBKR market source subscribes to beyond the underlyings: chains, watched contracts, IV history.

**Chains** are discovered at run time each day (:func:`~core.ibkr.contracts.discover_chain`,
in the background, once the underlying has a price; retried after ``DISCOVER_RETRY_S`` on
failure). **Watched contracts** (``watch(keys)``: working orders and open positions) are
qualified in the background and always stream.

**Reference**: the 52-week IV range from IB's daily ``OPTION_IMPLIED_VOLATILITY`` history,
requested for every symbol in the background at start; ``reference()`` waits for it at most
``REF_WAIT_S`` in all (then None). Earnings and insider data are not IB's: None / 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import date
from typing import TYPE_CHECKING

from core.ibkr.contracts import contract_from_key, discover_chain
from core.ibkr.market_lines import MarketLines
from core.ibkr.market_state import positive
from core.market.reference import Reference

if TYPE_CHECKING:
    from core.domain.contract import OptionContract

log = logging.getLogger("quanticity.ibkr.market")

DISCOVER_RETRY_S = 30.0
REF_TIMEOUT_S = 10.0


class ChainDiscovery(MarketLines):
    """Chain discovery, watched contracts and the IV reference of the IBKR market source."""

    REF_WAIT_S = 3.0  # reference(): total wait for the background IV-history requests

    def _kick_discovery(self, today: date) -> None:
        loop_now = asyncio.get_running_loop().time()
        for sym in self.symbols:
            if self._chain_day.get(sym) == today or self._und[sym].contract is None:
                continue
            task = self._tasks.get(f"chain:{sym}")
            if (task is not None and not task.done()) or loop_now < self._retry_at.get(sym, 0.0):
                continue
            spot = self._spot(sym)
            if spot is None:
                continue
            self._tasks[f"chain:{sym}"] = asyncio.create_task(self._discover(sym, spot, today),
                                                              name=f"ibkr-chain-{sym}")

    async def _discover(self, sym: str, spot: float, today: date) -> None:
        try:
            chain = await discover_chain(self.conn, sym, spot, self.ib_settings, today, self.cache)
        except (OSError, TimeoutError, ConnectionError, RuntimeError, ValueError) as exc:
            log.warning("ibkr market: %s chain discovery failed (%s); retrying in %.0fs", sym,
                        type(exc).__name__, DISCOVER_RETRY_S)
            self._retry_at[sym] = asyncio.get_running_loop().time() + DISCOVER_RETRY_S
            return
        if not chain:
            log.warning("ibkr market: %s has no listed expiry within %d days", sym, self.ib_settings.chain_max_dte)
        self._chains[sym] = chain
        self._chain_day[sym] = today
        keep = {c.key for cs in self._chains.values() for c in cs} | self._watch
        for key in [k for k in self._rows if k not in keep]:
            del self._rows[key]
        self._rebuild_rotation()

    def watch(self, contract_keys: set[str]) -> None:
        wanted = set()
        for key in contract_keys:
            c = contract_from_key(key)
            if c is not None and c.symbol in self._und:
                wanted.add(c.key)
        if wanted != self._watch:
            self._watch = wanted
            self._rebuild_rotation()

    def _kick_watch(self, today: date) -> None:
        todo = [c for k in sorted(self._watch) if k not in self.cache.options
                and not self.cache.known_unknown(k, today) and (c := contract_from_key(k)) is not None]
        task = self._tasks.get("watch")
        if todo and (task is None or task.done()):
            self._tasks["watch"] = asyncio.create_task(self._qualify_watch(todo, today), name="ibkr-watch")

    async def _qualify_watch(self, todo: list[OptionContract], today: date) -> None:
        try:
            await self.cache.qualify(todo, today)
        except (OSError, TimeoutError, ConnectionError, RuntimeError, ValueError) as exc:
            log.warning("ibkr market: could not qualify watched contracts (%s)", type(exc).__name__)
            return
        unknown = [c.key for c in todo if self.cache.known_unknown(c.key, today)]
        if unknown:
            log.error("ibkr market: watched contracts unknown at IB: %s", ", ".join(unknown))
        self._rebuild_rotation()
        if self._started and self.conn.connected:
            self._sync_lines()


    async def _load_references(self) -> None:
        async def one(sym: str) -> None:
            c = self._und[sym].contract
            if c is None:
                return
            bars = await self.conn.ib.reqHistoricalDataAsync(
                c, endDateTime="", durationStr="1 Y", barSizeSetting="1 day",
                whatToShow="OPTION_IMPLIED_VOLATILITY", useRTH=True, timeout=REF_TIMEOUT_S)
            ivs = [v for b in bars or [] if (v := positive(b.close)) is not None]
            if len(ivs) >= 20:
                self._refs[sym] = Reference(sym, round(min(ivs), 4), round(max(ivs), 4), None, 0.0)

        results = await asyncio.gather(*(one(s) for s in self.symbols), return_exceptions=True)
        for sym, res in zip(self.symbols, results, strict=True):
            if isinstance(res, Exception):
                log.warning("ibkr market: no IV history for %s (%s)", sym, type(res).__name__)

    async def reference(self, symbol: str) -> Reference | None:
        task = self._ref_task
        if task is not None and not task.done():
            loop = asyncio.get_running_loop()
            if self._ref_deadline is None:
                self._ref_deadline = loop.time() + self.REF_WAIT_S
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), max(0.0, self._ref_deadline - loop.time()))
        return self._refs.get(symbol)

