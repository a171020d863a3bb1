"""Contracts between the system's :class:`OptionContract` and ib_async, and chain discovery.

- :func:`to_ib_option` / :func:`from_ib_option`: an option on SMART in USD with its multiplier
  (and trading class when known: SPX has the AM-settled ``SPX`` and the PM-settled ``SPXW`` on the
  same dates). :func:`contract_from_key` parses ``OptionContract.key``.
- :func:`underlying_contract`: ``Index`` for the cash indices (SPX, XSP, VIX on CBOE; NDX on
  NASDAQ; RUT on RUSSELL - where IB lists them), ``Stock`` on SMART for stocks and ETFs.
- :class:`ContractCache`: qualifies in batches of ``ibkr.qualify_batch`` one after the other
  (IB paces contract-detail requests; a whole chain in one burst trips it) and remembers conIds
  by ``OptionContract.key`` (and the keys IB does not know, for the day), so a reconnect or a
  rotation never qualifies again.
- :func:`discover_chain`: ``reqSecDefOptParams`` for the underlying, then the nearest
  ``chain_expiries`` expiries with 0 <= DTE <= ``chain_max_dte`` (0DTE when listed) and
  ``chain_strikes_each_side`` strikes below and above spot on each, qualified. Expiries always
  come from IB; none is hard-coded.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Iterable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from ib_async import Contract, Index, Option, Stock

from core.config.model import IbkrSettings
from core.domain.contract import OptionContract, Right

if TYPE_CHECKING:
    from core.ibkr.connection import IbConnection

log = logging.getLogger("quanticity.ibkr.contracts")

INDEX_EXCHANGES = {"SPX": "CBOE", "XSP": "CBOE", "VIX": "CBOE", "NDX": "NASDAQ", "RUT": "RUSSELL"}
REQUEST_TIMEOUT_S = 15.0


def ib_expiry(d: date) -> str:
    return f"{d:%Y%m%d}"


def parse_ib_expiry(text: str) -> date:
    return datetime.strptime(text[:8], "%Y%m%d").date()


def to_ib_option(c: OptionContract, trading_class: str | None = None) -> Option:
    """The IB option for ``c`` on SMART / USD (not qualified: no conId yet)."""
    return Option(c.symbol, ib_expiry(c.expiry), float(c.strike), c.right.value, "SMART",
                  multiplier=str(c.multiplier), currency="USD", tradingClass=trading_class or "")


def from_ib_option(ib_contract: Contract) -> OptionContract:
    """The system's contract for an IB option (qualified or not)."""
    right = (ib_contract.right or "").upper()[:1]
    return OptionContract(symbol=ib_contract.symbol, expiry=parse_ib_expiry(ib_contract.lastTradeDateOrContractMonth),
                          strike=float(ib_contract.strike), right=Right(right),
                          multiplier=int(float(ib_contract.multiplier or 100)))


def contract_from_key(key: str) -> OptionContract | None:
    """``SYMBOL:YYYYMMDD:R:STRIKE:MULT`` -> OptionContract (None when malformed)."""
    try:
        sym, ymd, right, strike, mult = key.split(":")
        return OptionContract(symbol=sym, expiry=parse_ib_expiry(ymd), strike=float(strike), right=Right(right),
                              multiplier=int(mult))
    except (ValueError, TypeError):
        return None


def underlying_contract(symbol: str) -> Contract:
    """``Index`` for the cash indices, ``Stock`` on SMART for everything else."""
    if symbol in INDEX_EXCHANGES:
        return Index(symbol, INDEX_EXCHANGES[symbol], "USD")
    return Stock(symbol, "SMART", "USD")


def _chunks(items: list, n: int) -> Iterable[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


class ContractCache:
    """Qualified IB contracts by ``OptionContract.key`` (options) and symbol (underlyings)."""

    def __init__(self, conn: IbConnection, batch: int) -> None:
        self.conn = conn
        self.batch = max(1, int(batch))
        self.options: dict[str, Contract] = {}
        self.underlyings: dict[str, Contract] = {}
        self.trading_class: dict[tuple[str, date], str] = {}  # (symbol, expiry) -> class chosen
        self._unknown: dict[str, date] = {}  # keys IB did not know -> the day it said so
        self._by_con_id: dict[int, OptionContract] = {}
        self.requests = 0  # contract-detail requests sent (tests, logs)

    def get(self, key: str) -> Contract | None:
        return self.options.get(key)

    def by_con_id(self, con_id: int) -> OptionContract | None:
        return self._by_con_id.get(con_id)

    def known_unknown(self, key: str, today: date) -> bool:
        return self._unknown.get(key) == today

    async def underlying(self, symbol: str) -> Contract | None:
        got = self.underlyings.get(symbol)
        if got is not None:
            return got
        contract = underlying_contract(symbol)
        self.requests += 1
        [res] = await asyncio.wait_for(self.conn.ib.qualifyContractsAsync(contract), REQUEST_TIMEOUT_S)
        if res is None or not getattr(res, "conId", 0):
            log.error("ibkr: underlying %s not found at IB", symbol)
            return None
        self.underlyings[symbol] = res
        return res

    async def qualify(self, contracts: list[OptionContract], today: date) -> dict[str, Contract]:
        """Qualify what is not cached yet, ``batch`` at a time; returns key -> contract for all known."""
        todo = [c for c in dict.fromkeys(contracts) if c.key not in self.options
                and not self.known_unknown(c.key, today)]
        for part in _chunks(todo, self.batch):
            ibcs = [to_ib_option(c, self.trading_class.get((c.symbol, c.expiry))) for c in part]
            self.requests += len(ibcs)
            res = await asyncio.wait_for(self.conn.ib.qualifyContractsAsync(*ibcs), REQUEST_TIMEOUT_S)
            for c, q in zip(part, res, strict=True):
                if isinstance(q, Contract) and q.conId:
                    self.options[c.key] = q
                    self._by_con_id[q.conId] = c
                else:
                    self._unknown[c.key] = today
        return {c.key: self.options[c.key] for c in contracts if c.key in self.options}


def _class_rank(symbol: str, trading_class: str) -> int:
    """Preference among trading classes listing the same date: PM-settled weeklies first."""
    order = [f"{symbol}W", f"{symbol}P", symbol]
    return order.index(trading_class) if trading_class in order else len(order)


def pick_expiries(params: list[Any], symbol: str, today: date, count: int, max_dte: int
                  ) -> list[tuple[date, Any]]:
    """The nearest ``count`` expiries with 0 <= DTE <= ``max_dte``, each with the chain row
    (trading class, strikes, multiplier) it is taken from."""
    best: dict[date, Any] = {}
    for p in params:
        for text in p.expirations:
            try:
                d = parse_ib_expiry(text)
            except ValueError:
                continue
            if not 0 <= (d - today).days <= max_dte:
                continue
            cur = best.get(d)
            if cur is None or _class_rank(symbol, p.tradingClass) < _class_rank(symbol, cur.tradingClass):
                best[d] = p
    return sorted(best.items(), key=lambda kv: kv[0])[:count]


def pick_strikes(strikes: Iterable[float], spot: float, each_side: int) -> list[float]:
    """``each_side`` strikes below spot and ``each_side`` at or above it."""
    ks = sorted({float(k) for k in strikes if k and k > 0})
    i = bisect.bisect_left(ks, spot)
    return ks[max(0, i - each_side):i + each_side]


async def discover_chain(conn: IbConnection, symbol: str, spot: float, settings: IbkrSettings, today: date,
                         cache: ContractCache | None = None) -> list[OptionContract]:
    """The chain to follow for ``symbol`` today, qualified (see the module docstring).

    Sorted by expiry, strike, right; contracts IB does not list (not every strike exists on every
    expiry) are left out."""
    cache = cache or ContractCache(conn, settings.qualify_batch)
    und = await cache.underlying(symbol)
    if und is None:
        return []
    params = await asyncio.wait_for(
        conn.ib.reqSecDefOptParamsAsync(und.symbol, "", und.secType, und.conId), REQUEST_TIMEOUT_S)
    rows = [p for p in params or [] if p.exchange == "SMART"] or list(params or [])
    chosen = pick_expiries(rows, symbol, today, settings.chain_expiries, settings.chain_max_dte)
    wanted: list[OptionContract] = []
    for expiry, p in chosen:
        cache.trading_class[(symbol, expiry)] = p.tradingClass
        mult = int(float(p.multiplier or 100))
        for k in pick_strikes(p.strikes, spot, settings.chain_strikes_each_side):
            for right in (Right.CALL, Right.PUT):
                wanted.append(OptionContract(symbol=symbol, expiry=expiry, strike=k, right=right, multiplier=mult))
    known = await cache.qualify(wanted, today)
    out = [c for c in wanted if c.key in known]
    log.info("ibkr: %s chain %s: %d contracts (%d listed of %d asked)", symbol,
             ", ".join(e.isoformat() for e, _ in chosen), len(out), len(out), len(wanted))
    return sorted(out, key=lambda c: (c.expiry, c.strike, c.right.value))
