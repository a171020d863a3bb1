"""A fake Interactive Brokers TWS / IB Gateway speaking the real API socket protocol.

Drive it with the real ``ib_async`` client::

    with FakeTWS() as tws:                          # or tws = FakeTWS(); port = tws.start(); ...; tws.stop()
        tws.add_stock("SPY", bid=589.95, ask=590.05, last=590.0)
        tws.add_option_chain("SPY", [date(2026, 12, 18)], [585.0, 590.0, 595.0])
        tws.set_option_quote("SPY", date(2026, 12, 18), 590.0, "C", bid=4.1, ask=4.3, iv=0.18, delta=0.52)
        ib = IB()
        await ib.connectAsync("127.0.0.1", tws.port, clientId=23, timeout=5)
        [opt] = await ib.qualifyContractsAsync(Option("SPY", "20261218", 590.0, "C", "SMART"))
        trade = ib.placeOrder(opt, LimitOrder("BUY", 3, 4.2, orderRef="q-1"))
        tws.fill_order("q-1", qty=1)                # partial fill -> execDetails + commissionReport

The server runs on its own thread and asyncio loop (like ``_server.FakeServer``),
bound to 127.0.0.1 on an ephemeral port.  Every public method is thread-safe: it
runs on the server loop and waits for it, so a test on its own loop can call it
(use ``await tws.wait_for_async(pred)`` there; ``wait_for`` blocks the thread).
Reference data may be added before ``start()``.  The ``fake_tws`` pytest fixture
yields a started, empty instance.

Protocol: server version 176 by default (164..178 accepted; the version announced
is ``min(server_version, client max)``).  Message layouts live in
:mod:`tests.fakes.ib_wire` and mirror ib_async's ``decoder.py``.  After ``startApi``
the server sends managedAccounts, nextValidId and the usual 2104/2106/2158 farm
notices (``startup_notices=False`` to skip them).

Test-side API: reference data (``add_stock``, ``add_option_chain``, ``set_*_quote``,
``set_depth``), account (``set_position``, ``set_account_value``, ``positions``,
``account_values``), orders (``fill_order``, ``cancel_order``, ``reject_next_order``,
``orders``, ``order_log``, ``cancel_log``, ``executions``), faults (``drop_connections``,
``send_error``, ``refuse_client_ids`` and the knobs set in ``__init__``), inspection
(``request_log``, ``connected_clients``, ``market_data_lines``, ``wait_for``).

Behaviour worth knowing (all modelled on TWS):

- a contract request with an empty exchange answers one row per listing exchange
  (ask for ``exchange="SMART"`` to qualify unambiguously); unknown -> error 200;
- orders belong to the client id that placed them; live openOrder / orderStatus /
  execDetails / commissionReport go to that client only.  A fill arrives as
  execDetails then orderStatus (``status_before_exec=True`` flips it) then
  commissionReport (after ``commission_delay_s``; never with ``withhold_commission``);
- commissions: ``commission_per_contract`` per option contract; stocks pay
  ``commission_per_share`` (min ``min_stock_commission``);
- position ``avg_cost`` after fills includes the commission, like IB's avgCost;
  realized PnL is reported on closing fills, Double.MAX_VALUE ("none") on opening ones;
- ``fill_mode="marketable"`` fills an order at placement / modification when it is
  marketable, and resting orders when a later quote update makes them marketable;
- a client id already connected (or in ``refuse_client_ids``) gets error 326 and
  the socket is closed.  ib_async then only raises when its ``timeout`` expires
  (``IB.client.apiError`` fires at once with "... already in use?");
- without ``market_data_permission`` live requests get 10167 + marketDataType 3 and
  delayed tick types (66-76, greeks 83); with permission, live data wins even after
  ``reqMarketDataType(3)`` (as TWS does);
- ``max_messages_per_second`` (default None: off) answers error 100 and drops the
  message, for pacing tests together with ``request_log``.

Not implemented (the request is logged and gets no answer): historical data,
scanners, news, PnL subscriptions, tick-by-tick, FA.  Combo (BAG) contracts get
error 200; parent / child (bracket, OCA) orders are not linked to each other.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Self
from zoneinfo import ZoneInfo

from . import ib_wire as w
from .ib_wire import IN, WireContract

__all__ = ["FakeTWS", "Instrument", "Quote", "fake_tws"]

log = logging.getLogger(__name__)
EASTERN = ZoneInfo("US/Eastern")

MSG_NO_SECDEF = "No security definition has been found for the request"
MSG_CLIENT_ID_IN_USE = "Unable to connect as the client id is already in use. Retry with a unique client id."
MSG_DELAYED = "Requested market data is not subscribed. Displaying delayed market data."
MSG_MAX_TICKERS = "Max number of tickers has been reached"
STARTUP_NOTICES = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)
# live tick type -> delayed tick type
DELAYED_TICK = {0: 69, 1: 66, 2: 67, 3: 70, 4: 68, 5: 71, 8: 74, 9: 75, 13: 83}
WORKING = ("PendingSubmit", "PreSubmitted", "Submitted")
ORDER_TYPES = (
    "ACTIVETIM,AD,ADJUST,ALERT,ALLOC,AVGCOST,BASKET,COND,CONDORDER,DAY,DEACT,GAT,GTC,GTD,IOC,LIT,LMT,MIT,"
    "MKT,NONALGO,OCA,REL,SCALE,SNAPMID,SNAPMKT,STP,STPLMT,TRAIL,TRAILLIT,TRAILLMT,WHATIF"
)


def _now_eastern() -> dt.datetime:
    return dt.datetime.now(EASTERN)


def _ib_time(moment: dt.datetime | None = None) -> str:
    """TWS's ``yyyymmdd hh:mm:ss US/Eastern`` (what ib_async's parseIBDatetime reads)."""
    return f"{(moment or _now_eastern()).astimezone(EASTERN):%Y%m%d %H:%M:%S} US/Eastern"


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else float(x)


def _norm_right(right: str) -> str:
    r = right.strip().upper()
    return {"CALL": "C", "PUT": "P"}.get(r, r)


# ----------------------------------------------------------------------------- state records
@dataclass
class Quote:
    """Level-1 state of one instrument (None = no value)."""

    bid: float | None = None
    ask: float | None = None
    last: float | None = None
    bid_size: float = 0
    ask_size: float = 0
    last_size: float = 0
    volume: float = 0
    open_interest: float = 0
    iv: float | None = None
    delta: float | None = None
    gamma: float | None = None
    vega: float | None = None
    theta: float | None = None
    und_price: float | None = None

    GREEKS = ("iv", "delta", "gamma", "vega", "theta", "und_price")

    def changed(self, other: Quote) -> set[str]:
        names = {n for n in self.__dataclass_fields__ if getattr(self, n) != getattr(other, n)}
        if names & set(self.GREEKS):
            names.add("greeks")
        return names

    @property
    def mid(self) -> float | None:
        if self.bid is not None and self.ask is not None and self.bid > 0 and self.ask > 0:
            return (self.bid + self.ask) / 2
        return None


@dataclass
class Instrument:
    con_id: int
    symbol: str
    sec_type: str  # "STK" | "OPT"
    exchanges: tuple[str, ...]
    primary_exchange: str = ""
    currency: str = "USD"
    expiry: dt.date | None = None
    strike: float = 0.0
    right: str = ""
    multiplier: int = 1
    trading_class: str = ""
    local_symbol: str = ""
    und_con_id: int = 0
    min_tick: float = 0.01
    quote: Quote = field(default_factory=Quote)

    @property
    def ltd(self) -> str:
        return f"{self.expiry:%Y%m%d}" if self.expiry else ""

    def wire(self, exchange: str | None = None) -> WireContract:
        return WireContract(
            con_id=self.con_id, symbol=self.symbol, sec_type=self.sec_type, last_trade_date=self.ltd,
            strike=self.strike, right=self.right,
            multiplier=str(self.multiplier) if self.sec_type == "OPT" else "",
            exchange=self.exchanges[0] if exchange is None else exchange,
            primary_exchange=self.primary_exchange, currency=self.currency,
            local_symbol=self.local_symbol, trading_class=self.trading_class,
        )

    def mark(self, fallback: float) -> float:
        q = self.quote
        return q.mid or q.last or fallback

    @property
    def venue(self) -> str:
        """Exchange reported on executions."""
        if self.sec_type == "STK":
            return self.primary_exchange or "ARCA"
        return next((e for e in self.exchanges if e != "SMART"), "SMART")


@dataclass
class OrderRec:
    order_id: int
    client_id: int
    perm_id: int
    inst: Instrument
    exchange: str
    action: str
    total_qty: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    order_ref: str
    account: str
    open_close: str = "O"
    origin: int = 0
    outside_rth: bool = False
    oca_group: str = ""
    status: str = "Submitted"
    filled: float = 0.0
    remaining: float = 0.0
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    completed_time: str = ""
    completed_status: str = ""

    @property
    def working(self) -> bool:
        return self.status in WORKING

    def as_dict(self) -> dict[str, Any]:
        i = self.inst
        return {
            "order_id": self.order_id, "perm_id": self.perm_id, "client_id": self.client_id,
            "order_ref": self.order_ref, "action": self.action, "total_qty": _num(self.total_qty),
            "order_type": self.order_type, "lmt_price": self.lmt_price, "aux_price": self.aux_price,
            "tif": self.tif, "status": self.status, "filled": _num(self.filled),
            "remaining": _num(self.remaining), "avg_fill_price": self.avg_fill_price,
            "sec_type": i.sec_type, "symbol": i.symbol, "con_id": i.con_id, "expiry": i.expiry,
            "strike": i.strike if i.sec_type == "OPT" else None, "right": i.right or None,
            "account": self.account,
        }

    def ib_fields(self) -> dict[str, Any]:
        """ib_async ``Order`` attribute names for openOrder / completedOrder."""
        return {
            "orderId": self.order_id, "clientId": self.client_id, "permId": self.perm_id,
            "action": self.action, "totalQuantity": self.total_qty, "orderType": self.order_type,
            "lmtPrice": self.lmt_price, "auxPrice": self.aux_price, "tif": self.tif,
            "ocaGroup": self.oca_group, "account": self.account, "openClose": self.open_close,
            "origin": self.origin, "orderRef": self.order_ref, "outsideRth": self.outside_rth,
            "hidden": False, "filledQuantity": self.filled, "exemptCode": -1, "parentId": 0,
        }

    def contract(self) -> WireContract:
        return self.inst.wire(self.exchange)


@dataclass
class ExecRec:
    exec_id: str
    order: OrderRec
    time: str
    when: dt.datetime
    side: str  # BOT / SLD
    shares: float
    price: float
    cum_qty: float
    avg_price: float
    commission: float
    realized_pnl: float | None
    commission_ready: bool = False

    def ib_fields(self) -> dict[str, Any]:
        o = self.order
        return {
            "orderId": o.order_id, "execId": self.exec_id, "time": self.time, "acctNumber": o.account,
            "exchange": o.inst.venue, "side": self.side, "shares": self.shares, "price": self.price,
            "permId": o.perm_id, "clientId": o.client_id, "cumQty": self.cum_qty,
            "avgPrice": self.avg_price, "orderRef": o.order_ref, "lastLiquidity": 2,
        }


@dataclass
class _MktSub:
    con_id: int
    generic: frozenset[str]
    delayed: bool


@dataclass
class _DepthSub:
    con_id: int
    rows: int
    smart: bool


class _Conn:
    """One client socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.version = 0
        self.client_id: int | None = None
        self.api_started = False
        self.closed = False
        self.md_type = 1
        self.mkt_subs: dict[int, _MktSub] = {}
        self.depth_subs: dict[int, _DepthSub] = {}
        self.positions_sub = False
        self.account_sub: str | None = None
        self.recent: deque[float] = deque()

    @property
    def live(self) -> bool:
        return self.api_started and not self.closed

    def send(self, *messages: bytes) -> None:
        if not self.closed and not self.writer.transport.is_closing():
            self.writer.write(b"".join(messages))

    def abort(self) -> None:
        self.closed = True
        self.writer.transport.abort()

    def close(self) -> None:
        """Flush what was written, then FIN."""
        self.closed = True
        self.writer.close()


# ----------------------------------------------------------------------------- the fake
class FakeTWS:
    """Fake TWS / IB Gateway; see the module docstring."""

    def __init__(
        self,
        *,
        server_version: int = 176,
        accounts: tuple[str, ...] = ("DU1234567",),
        net_liquidation: float = 100_000.0,
        buying_power: float = 400_000.0,
        commission_per_contract: float = 0.65,
        commission_per_share: float = 0.005,
        min_stock_commission: float = 1.0,
        startup_notices: bool = True,
    ) -> None:
        """``commission_per_contract`` applies to options; stocks pay ``commission_per_share``
        (at least ``min_stock_commission`` per execution)."""
        if not 164 <= server_version <= 178:
            raise ValueError("server_version must be within 164..178 (what ib_async 2.x speaks)")
        if not accounts:
            raise ValueError("at least one account")
        self.server_version = server_version
        self.accounts = tuple(accounts)
        self.net_liquidation = net_liquidation
        self.buying_power = buying_power
        self.commission_per_contract = commission_per_contract
        self.commission_per_share = commission_per_share
        self.min_stock_commission = min_stock_commission
        self.startup_notices = startup_notices
        self.host = "127.0.0.1"
        self.port: int = 0
        # knobs: plain attributes, set them any time (read on the server loop)
        self.fill_mode = "rest"  # "rest": only fill_order() fills; "marketable": marketable orders fill
        self.commission_delay_s = 0.0  # commissionReport this long after execDetails
        self.withhold_commission = False  # never send commissionReport
        self.status_before_exec = False  # fill as orderStatus then execDetails (default: the reverse)
        self.new_order_status = "Submitted"  # or "PreSubmitted"
        self.refuse_client_ids: set[int] = set()  # startApi -> error 326 + close
        self.market_data_permission = True  # False: 10167 + delayed data (marketDataType 3)
        self.max_market_data_lines = 100  # error 101 beyond (all connections together)
        self.max_depth_subscriptions = 3  # error 309 beyond
        self.max_messages_per_second: int | None = None  # error 100 (message dropped) beyond
        # reference data
        self._instruments: dict[int, Instrument] = {}
        self._stocks: dict[str, Instrument] = {}
        self._options: dict[tuple[str, str, dt.date, float, str], Instrument] = {}  # symbol, tc, exp, K, C/P
        self._chains: dict[tuple[str, str], dict[str, Any]] = {}  # (symbol, tradingClass) -> chain
        self._books: dict[int, tuple[list[tuple[float, float]], list[tuple[float, float]]]] = {}
        self._stock_ids = itertools.count(756_001)
        self._option_ids = itertools.count(600_000_001)
        # account / orders
        self._positions: dict[tuple[str, int], tuple[float, float]] = {}
        self._realized: dict[tuple[str, int], float] = {}
        self._cash: dict[str, float] = {a: net_liquidation for a in self.accounts}
        self._account_overrides: dict[tuple[str, str], tuple[str, str]] = {}
        self._orders: dict[tuple[int, int], OrderRec] = {}
        self._execs: list[ExecRec] = []
        self._order_log: list[dict[str, Any]] = []
        self._cancel_log: list[int] = []
        self._request_log: list[tuple[float, int, int, list[str]]] = []
        self._reject_next: deque[tuple[int, str]] = deque()
        self._perm_ids = itertools.count(1_800_000_001)
        self._exec_seq = itertools.count(0x6563B0A1)
        # server plumbing
        self._conns: list[_Conn] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stop_event: asyncio.Event | None = None
        self._start_error: BaseException | None = None
        self._handlers: dict[int, Callable[[_Conn, list[str]], None]] = {
            IN.START_API: self._on_start_api,
            IN.REQ_MKT_DATA: self._on_req_mkt_data,
            IN.CANCEL_MKT_DATA: self._on_cancel_mkt_data,
            IN.PLACE_ORDER: self._on_place_order,
            IN.CANCEL_ORDER: self._on_cancel_order,
            IN.REQ_OPEN_ORDERS: lambda c, f: self._answer_open_orders(c, all_clients=False),
            IN.REQ_ALL_OPEN_ORDERS: lambda c, f: self._answer_open_orders(c, all_clients=True),
            IN.REQ_AUTO_OPEN_ORDERS: lambda c, f: None,
            IN.REQ_ACCOUNT_UPDATES: self._on_req_account_updates,
            IN.REQ_EXECUTIONS: self._on_req_executions,
            IN.REQ_IDS: lambda c, f: c.send(w.encode_next_valid_id(self._next_order_id())),
            IN.REQ_CONTRACT_DETAILS: self._on_req_contract_details,
            IN.REQ_MKT_DEPTH: self._on_req_mkt_depth,
            IN.CANCEL_MKT_DEPTH: lambda c, f: c.depth_subs.pop(w.as_int(f[2]), None),
            IN.SET_SERVER_LOGLEVEL: lambda c, f: None,
            IN.REQ_MANAGED_ACCTS: lambda c, f: c.send(w.encode_managed_accounts(self.accounts)),
            IN.REQ_CURRENT_TIME: lambda c, f: c.send(w.encode_current_time(int(time.time()))),
            IN.REQ_GLOBAL_CANCEL: self._on_global_cancel,
            IN.REQ_MARKET_DATA_TYPE: self._on_req_market_data_type,
            IN.REQ_POSITIONS: self._on_req_positions,
            IN.CANCEL_POSITIONS: lambda c, f: setattr(c, "positions_sub", False),
            IN.REQ_ACCOUNT_SUMMARY: self._on_req_account_summary,
            IN.CANCEL_ACCOUNT_SUMMARY: lambda c, f: None,
            IN.REQ_POSITIONS_MULTI: self._on_req_positions_multi,
            IN.CANCEL_POSITIONS_MULTI: lambda c, f: None,
            IN.REQ_ACCOUNT_UPDATES_MULTI: self._on_req_account_updates_multi,
            IN.CANCEL_ACCOUNT_UPDATES_MULTI: lambda c, f: None,
            IN.REQ_SEC_DEF_OPT_PARAMS: self._on_req_sec_def_opt_params,
            IN.REQ_COMPLETED_ORDERS: self._on_req_completed_orders,
        }

    # ================================================================== lifecycle
    def start(self, timeout: float = 10.0) -> int:
        """Start serving (idempotent); returns the port."""
        if self._thread is not None:
            return self.port
        if self._started.is_set():
            raise RuntimeError("a stopped FakeTWS cannot be restarted; make a new one")
        self._thread = threading.Thread(target=self._run, name="fake-tws", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError(f"FakeTWS did not start within {timeout}s")
        if self._start_error is not None:
            raise RuntimeError("FakeTWS failed to start") from self._start_error
        return self.port

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection, stop the loop and join the thread (idempotent)."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if self._stop_event is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._stop_event.set)
            except RuntimeError:  # loop already closed
                pass
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001  # surfaced via start()
            self._start_error = exc
            self._started.set()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in pending:
                    t.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            finally:
                loop.close()

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        server = await asyncio.start_server(self._handle_conn, self.host, 0)
        self.port = server.sockets[0].getsockname()[1]
        self._started.set()
        try:
            await self._stop_event.wait()
        finally:
            server.close()
            for conn in list(self._conns):
                conn.abort()
            self._conns.clear()
            await server.wait_closed()

    def _call(self, fn: Callable[..., Any], *args: Any, timeout: float = 5.0) -> Any:
        """Run ``fn(*args)`` on the server loop and wait (directly when not running / on the loop)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive() or loop.is_closed():
            return fn(*args)
        if threading.current_thread() is thread:
            return fn(*args)

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout)

    # ================================================================== reference data
    def add_stock(self, symbol: str, *, con_id: int | None = None, bid: float, ask: float, last: float,
                  bid_size: int = 100, ask_size: int = 100, volume: int = 1_000_000,
                  primary_exchange: str = "ARCA") -> int:
        """Register a US stock/ETF (exchanges SMART + ``primary_exchange``); returns its conId."""

        def do() -> int:
            cid = con_id if con_id is not None else next(self._stock_ids)
            if cid in self._instruments:
                raise ValueError(f"conId {cid} already used")
            inst = Instrument(
                con_id=cid, symbol=symbol, sec_type="STK", exchanges=("SMART", primary_exchange),
                primary_exchange=primary_exchange, trading_class=symbol, local_symbol=symbol,
                quote=Quote(bid=bid, ask=ask, last=last, bid_size=bid_size, ask_size=ask_size, last_size=100,
                            volume=volume),
            )
            self._instruments[cid] = inst
            self._stocks[symbol] = inst
            for opt in self._options.values():
                if opt.symbol == symbol:
                    opt.und_con_id = cid
            return cid

        return self._call(do)

    def add_option_chain(self, symbol: str, expiries: list[dt.date], strikes: list[float], *,
                         multiplier: int = 100, trading_class: str | None = None,
                         exchanges: tuple[str, ...] = ("SMART", "CBOE")) -> None:
        """Every (expiry, strike, C/P) gets a conId; may be called again to extend the chain.  Several
        trading classes per symbol are allowed (SPX / SPXW): pass ``trading_class=`` to the option
        lookups then."""

        def do() -> None:
            tc = trading_class or symbol
            und = self._stocks.get(symbol)
            chain = self._chains.setdefault(
                (symbol, tc), {"multiplier": multiplier, "exchanges": tuple(exchanges), "expiries": set(),
                               "strikes": set()})
            for expiry in expiries:
                for strike in strikes:
                    for right in ("C", "P"):
                        key = (symbol, tc, expiry, float(strike), right)
                        if key in self._options:
                            continue
                        inst = Instrument(
                            con_id=next(self._option_ids), symbol=symbol, sec_type="OPT",
                            exchanges=tuple(exchanges), expiry=expiry, strike=float(strike), right=right,
                            multiplier=multiplier, trading_class=tc,
                            local_symbol=f"{tc:<6}{expiry:%y%m%d}{right}{round(strike * 1000):08d}",
                            und_con_id=und.con_id if und else 0,
                        )
                        self._instruments[inst.con_id] = inst
                        self._options[key] = inst
                chain["expiries"].add(expiry)
                chain["strikes"].update(float(s) for s in strikes)

        self._call(do)

    def option_con_id(self, symbol: str, expiry: dt.date, strike: float, right: str, *,
                      trading_class: str | None = None) -> int:
        return self._call(lambda: self._option(symbol, expiry, strike, right, trading_class).con_id)

    def stock_con_id(self, symbol: str) -> int:
        return self._call(lambda: self._stocks[symbol].con_id)

    def _option(self, symbol: str, expiry: dt.date, strike: float, right: str,
                trading_class: str | None = None) -> Instrument:
        found = [inst for (sym, tc, exp, k, r), inst in self._options.items()
                 if (sym, exp, k, r) == (symbol, expiry, float(strike), _norm_right(right))
                 and trading_class in (None, tc)]
        if len(found) != 1:
            what = "no" if not found else "more than one (pass trading_class=)"
            raise KeyError(f"{what} option {symbol} {expiry} {strike} {right} {trading_class or ''}".rstrip())
        return found[0]

    def set_stock_quote(self, symbol: str, *, bid: float | None = None, ask: float | None = None,
                        last: float | None = None, bid_size: int | None = None, ask_size: int | None = None,
                        volume: int | None = None) -> None:
        """Update the given fields (None = unchanged) and push the changes to live subscriptions."""
        given = {"bid": bid, "ask": ask, "last": last, "bid_size": bid_size, "ask_size": ask_size,
                 "volume": volume}
        updates = {k: v for k, v in given.items() if v is not None}
        self._call(lambda: self._update_quote(self._stocks[symbol], replace(self._stocks[symbol].quote,
                                                                             **updates)))

    def set_option_quote(self, symbol: str, expiry: dt.date, strike: float, right: str, *, bid: float,
                         ask: float, bid_size: int = 10, ask_size: int = 10, last: float | None = None,
                         volume: int = 0, open_interest: int = 0, iv: float | None = None,
                         delta: float | None = None, gamma: float | None = None, vega: float | None = None,
                         theta: float | None = None, und_price: float | None = None,
                         trading_class: str | None = None) -> None:
        """Replace the option's quote; pushes bid/ask (1/2), sizes (0/3), last (4), volume (8), OI
        (27 call / 28 put, to requests with generic tick 101), option volume (29/30, generic 100)
        and model greeks (tick 13; ``und_price`` defaults to the underlying's mid/last)."""

        def do() -> None:
            inst = self._option(symbol, expiry, strike, right, trading_class)
            self._update_quote(inst, Quote(
                bid=bid, ask=ask, last=last, bid_size=bid_size, ask_size=ask_size,
                last_size=1 if last is not None else 0, volume=volume, open_interest=open_interest,
                iv=iv, delta=delta, gamma=gamma, vega=vega, theta=theta, und_price=und_price))

        self._call(do)

    def set_depth(self, symbol: str, bids: list[tuple[float, int]], asks: list[tuple[float, int]], *,
                  con_id: int | None = None) -> None:
        """Replace the order book of ``symbol`` (a stock; or any instrument by ``con_id``), best first."""

        def do() -> None:
            cid = con_id if con_id is not None else self._stocks[symbol].con_id
            old = self._books.get(cid, ([], []))
            new = ([(float(p), float(s)) for p, s in bids], [(float(p), float(s)) for p, s in asks])
            self._books[cid] = new
            for conn in self._live_conns():
                for req_id, sub in conn.depth_subs.items():
                    if sub.con_id == cid:
                        conn.send(*self._depth_diff(req_id, sub, old, new))

        self._call(do)

    # ================================================================== account
    def set_position(self, symbol: str, expiry: dt.date | None, strike: float | None, right: str | None,
                     qty: int, avg_cost: float, account: str | None = None, *,
                     trading_class: str | None = None) -> None:
        """Set a position as IB holds it (options: ``avg_cost`` per contract = price * multiplier;
        ``expiry=None`` for the stock itself).  Pushed to position / portfolio subscribers."""

        def do() -> None:
            if expiry is None:
                inst = self._stocks[symbol]
            else:
                inst = self._option(symbol, expiry, float(strike or 0), right or "", trading_class)
            acct = account or self.accounts[0]
            if qty:
                self._positions[(acct, inst.con_id)] = (float(qty), float(avg_cost))
            else:
                self._positions.pop((acct, inst.con_id), None)
            self._push_position(acct, inst)

        self._call(do)

    def set_account_value(self, tag: str, value: float | str, currency: str = "USD",
                          account: str | None = None) -> None:
        """Override (or add) one account value tag, e.g. ``set_account_value("BuyingPower", 0)``."""

        def do() -> None:
            acct = account or self.accounts[0]
            self._account_overrides[(acct, tag)] = (w.fmt(value), currency)
            self._push_account(acct)

        self._call(do)

    @property
    def positions(self) -> dict[int, tuple[float, float]]:
        """conId -> (qty, avg_cost), summed over accounts."""

        def do() -> dict[int, tuple[float, float]]:
            out: dict[int, tuple[float, float]] = {}
            for (_, cid), (qty, avg) in self._positions.items():
                q0, a0 = out.get(cid, (0.0, 0.0))
                total = q0 + qty
                out[cid] = (total, (q0 * a0 + qty * avg) / total if total else 0.0)
            return {cid: (_num(q), a) for cid, (q, a) in out.items()}

        return self._call(do)

    @property
    def positions_by_account(self) -> dict[tuple[str, int], tuple[float, float]]:
        return self._call(lambda: dict(self._positions))

    def account_values(self, account: str | None = None) -> dict[str, str]:
        """tag -> value as reqAccountUpdates would report them now."""
        return self._call(lambda: {t: v for t, v, _ in self._account_values(account or self.accounts[0])})

    # ================================================================== orders
    def fill_order(self, order_ref_or_id: str | int, qty: int | None = None,
                   price: float | None = None) -> str:
        """(Partial) fill of a working order by orderRef (str) or IB orderId (int); returns the execId.

        ``qty`` defaults to the remaining quantity; ``price`` to the limit price (market orders:
        the ask for a BUY, the bid for a SELL).  Works while the owner is disconnected."""

        def do() -> str:
            order = self._find_order(order_ref_or_id)
            if not order.working:
                raise ValueError(f"order {order.order_id} ({order.order_ref!r}) is {order.status}")
            return self._fill(order, qty, price)

        return self._call(do)

    def cancel_order(self, order_ref_or_id: str | int, message: str = "Order Canceled - reason:") -> None:
        """Cancel a working order from the server side (end of day, exchange, risk): orderStatus
        Cancelled and error 202 to the owner, as for a client cancel (but not in cancel_log)."""

        def do() -> None:
            order = self._find_order(order_ref_or_id)
            if not order.working:
                raise ValueError(f"order {order.order_id} ({order.order_ref!r}) is {order.status}")
            self._cancel(order, message)

        self._call(do)

    def reject_next_order(self, code: int = 201, message: str = "Order rejected - reason:TEST") -> None:
        """The next placeOrder gets this error (a new order becomes Inactive; a modification leaves
        the working order unchanged)."""
        self._call(lambda: self._reject_next.append((code, message)))

    @property
    def orders(self) -> list[dict[str, Any]]:
        return self._call(lambda: [o.as_dict() for o in self._orders.values()])

    @property
    def order_log(self) -> list[dict[str, Any]]:
        return self._call(lambda: [dict(e) for e in self._order_log])

    @property
    def cancel_log(self) -> list[int]:
        return self._call(lambda: list(self._cancel_log))

    @property
    def executions(self) -> list[dict[str, Any]]:
        """Every execution: ib_async Execution field names plus commission / realizedPNL / conId."""

        def do() -> list[dict[str, Any]]:
            return [{**e.ib_fields(), "commission": e.commission, "realizedPNL": e.realized_pnl,
                     "conId": e.order.inst.con_id, "commissionSent": e.commission_ready} for e in self._execs]

        return self._call(do)

    # ================================================================== faults and inspection
    def drop_connections(self) -> None:
        """Abort every client socket (the clients see a disconnect)."""

        def do() -> None:
            for conn in list(self._conns):
                conn.abort()
                self._forget(conn)

        self._call(do)

    def send_error(self, code: int, message: str, req_id: int = -1) -> None:
        """Send an error/notice (1100, 1101, 1102, 2103, 2104, ...) to every connected client."""
        def do() -> None:
            for conn in self._live_conns():
                self._error(conn, req_id, code, message)

        self._call(do)

    @property
    def request_log(self) -> list[tuple[float, int, int, list[str]]]:
        """(monotonic ts, msg id, client id or -1, fields) of every message received."""
        return self._call(lambda: [(ts, mid, cid, list(f)) for ts, mid, cid, f in self._request_log])

    @property
    def connected_clients(self) -> list[int]:
        return self._call(lambda: [c.client_id for c in self._live_conns() if c.client_id is not None])

    def market_data_lines(self) -> int:
        return self._call(self._mkt_lines)

    def clear_logs(self) -> None:
        """Forget request_log, order_log and cancel_log (state is kept)."""
        self._call(lambda: (self._request_log.clear(), self._order_log.clear(), self._cancel_log.clear()))

    def wait_for(self, predicate: Callable[[FakeTWS], Any], timeout: float = 5.0) -> Any:
        """Poll ``predicate(self)`` until truthy; return it (TimeoutError otherwise).  Blocks the
        calling thread: from a coroutine sharing the client's loop use :meth:`wait_for_async`."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate(self)
            if result:
                return result
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            time.sleep(0.01)

    async def wait_for_async(self, predicate: Callable[[FakeTWS], Any], timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = predicate(self)
            if result:
                return result
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            await asyncio.sleep(0.01)

    # ================================================================== connection handling
    def _live_conns(self) -> list[_Conn]:
        return [c for c in self._conns if c.live]

    def _conn_for_client(self, client_id: int) -> _Conn | None:
        return next((c for c in reversed(self._conns) if c.live and c.client_id == client_id), None)

    def _forget(self, conn: _Conn) -> None:
        conn.closed = True
        conn.mkt_subs.clear()
        conn.depth_subs.clear()
        if conn in self._conns:
            self._conns.remove(conn)

    async def _handle_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(reader, writer)
        self._conns.append(conn)
        try:
            if await reader.readexactly(4) != b"API\0":
                return
            (size,) = struct.unpack(">I", await reader.readexactly(4))
            lo, hi = w.parse_version_range((await reader.readexactly(size)).decode())
            conn.version = min(self.server_version, hi)
            if conn.version < lo:
                return
            now = _now_eastern()
            conn.send(w.encode_handshake(conn.version, f"{now:%Y%m%d %H:%M:%S} {now.tzname()}"))
            buffer = bytearray()
            while not conn.closed:
                data = await reader.read(65536)
                if not data:
                    break
                buffer += data
                for fields in w.split_frames(buffer):
                    if conn.closed:
                        break
                    self._dispatch(conn, fields)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            was_closed = conn.closed
            self._forget(conn)
            if not was_closed:
                writer.close()

    def _dispatch(self, conn: _Conn, fields: list[str]) -> None:
        if not fields:
            return
        msg_id = w.as_int(fields[0], -1)
        if msg_id == IN.START_API and conn.client_id is None:
            conn.client_id = w.as_int(fields[2] if len(fields) > 2 else "", 0)
        now = time.monotonic()
        self._request_log.append((now, msg_id, conn.client_id if conn.client_id is not None else -1, fields))
        if self.max_messages_per_second and msg_id != IN.START_API:
            conn.recent.append(now)
            while conn.recent and now - conn.recent[0] > 1.0:
                conn.recent.popleft()
            if len(conn.recent) > self.max_messages_per_second:
                conn.send(w.encode_error(-1, 100, "Max rate of messages per second has been exceeded:"
                                         f"max={self.max_messages_per_second} rec={len(conn.recent)} (1)",
                                         conn.version))
                return
        handler = self._handlers.get(msg_id)
        if handler is None:
            log.info("FakeTWS: unhandled message %s %s", msg_id, fields)
            return
        try:
            handler(conn, fields)
        except Exception as exc:  # a bad request must not kill the connection
            log.exception("FakeTWS: error handling %s", fields)
            req_id = w.as_int(fields[2], -1) if len(fields) > 2 else -1
            conn.send(w.encode_error(req_id, 321, f"Error validating request:-'{exc}'", conn.version))

    def _error(self, conn: _Conn, req_id: int, code: int, message: str) -> None:
        conn.send(w.encode_error(req_id, code, message, conn.version))

    # ================================================================== handlers: session
    def _on_start_api(self, conn: _Conn, f: list[str]) -> None:
        client_id = w.as_int(f[2]) if len(f) > 2 else 0
        conn.client_id = client_id
        in_use = any(c is not conn and c.live and c.client_id == client_id and not c.reader.at_eof()
                     for c in self._conns)
        if client_id in self.refuse_client_ids or in_use:
            self._error(conn, -1, 326, MSG_CLIENT_ID_IN_USE)
            conn.close()
            return
        conn.api_started = True
        conn.send(w.encode_managed_accounts(self.accounts), w.encode_next_valid_id(self._next_order_id()))
        if self.startup_notices:
            for code, text in STARTUP_NOTICES:
                self._error(conn, -1, code, text)

    def _next_order_id(self) -> int:
        return max((oid for _, oid in self._orders), default=0) + 1

    # ================================================================== handlers: contracts
    def _matches(self, c: WireContract) -> list[tuple[Instrument, str]]:
        """Instruments matching a (partial) contract, each with the exchange to report."""
        if c.con_id:
            found = self._instruments.get(c.con_id)
            cands = [found] if found and (not c.sec_type or c.sec_type == found.sec_type) else []
        else:
            sec = c.sec_type.upper()
            cands = []
            for inst in self._instruments.values():
                if c.symbol and c.symbol != inst.symbol:
                    continue
                if c.local_symbol and c.local_symbol.replace(" ", "") != inst.local_symbol.replace(" ", ""):
                    continue
                if not c.symbol and not c.local_symbol:
                    continue
                if (sec and sec != inst.sec_type) or (c.currency and c.currency != inst.currency):
                    continue
                if inst.sec_type == "OPT":
                    if c.last_trade_date and not inst.ltd.startswith(c.last_trade_date.replace("-", "")):
                        continue
                    if c.strike and abs(c.strike - inst.strike) > 1e-6:
                        continue
                    if c.right and _norm_right(c.right) != inst.right:
                        continue
                    if c.multiplier and w.as_int(c.multiplier) != inst.multiplier:
                        continue
                    if c.trading_class and c.trading_class != inst.trading_class:
                        continue
                elif c.primary_exchange and c.primary_exchange != inst.primary_exchange:
                    continue
                cands.append(inst)
        out = []
        cands.sort(key=lambda i: (i.sec_type != "STK", i.expiry or dt.date.min, i.strike, i.right))
        for inst in cands:
            if c.exchange:
                if c.exchange in inst.exchanges:
                    out.append((inst, c.exchange))
            else:
                out.extend((inst, ex) for ex in inst.exchanges)
        return out

    def _resolve_one(self, conn: _Conn, req_id: int, c: WireContract) -> Instrument | None:
        """Exactly one instrument for an order / market data request, else error 200."""
        found = {inst.con_id: inst for inst, _ in self._matches(replace(c, exchange=""))}
        if c.exchange and c.con_id == 0:
            found = {i.con_id: i for i in found.values() if c.exchange in i.exchanges}
        if len(found) == 1:
            return next(iter(found.values()))
        if found:
            self._error(conn, req_id, 200, f"The contract description specified for {c.symbol} is ambiguous.")
        else:
            self._error(conn, req_id, 200, MSG_NO_SECDEF)
        return None

    def _on_req_contract_details(self, conn: _Conn, f: list[str]) -> None:
        req_id = w.as_int(f[2])
        matches = self._matches(WireContract.parse(f, 3))
        if not matches:
            self._error(conn, req_id, 200, MSG_NO_SECDEF)
            return
        for inst, exchange in matches:
            conn.send(w.encode_contract_data(req_id, inst.wire(exchange), self._details(inst)))
        conn.send(w.encode_contract_data_end(req_id))

    def _details(self, inst: Instrument) -> dict[str, Any]:
        if inst.sec_type == "STK":
            day = f"{_now_eastern():%Y%m%d}"
            etf = inst.primary_exchange == "ARCA"
            return {
                "minTick": inst.min_tick, "orderTypes": ORDER_TYPES,
                "validExchanges": ",".join(inst.exchanges), "longName": f"{inst.symbol} (fake)",
                "stockType": "ETF" if etf else "COMMON", "industry": "Funds" if etf else "",
                "tradingHours": f"{day}:0400-{day}:2000", "liquidHours": f"{day}:0930-{day}:1600",
                "marketRuleIds": "26,26", "aggGroup": 1,
            }
        assert inst.expiry is not None
        exp = f"{inst.expiry:%Y%m%d}"
        return {
            "minTick": inst.min_tick, "orderTypes": ORDER_TYPES, "validExchanges": ",".join(inst.exchanges),
            "underConId": inst.und_con_id, "longName": f"{inst.symbol} (fake)",
            "contractMonth": f"{inst.expiry:%Y%m}", "tradingHours": f"{exp}:0930-{exp}:1600",
            "liquidHours": f"{exp}:0930-{exp}:1600", "marketRuleIds": ",".join(["32"] * len(inst.exchanges)),
            "aggGroup": 2, "underSymbol": inst.symbol, "underSecType": "STK", "realExpirationDate": exp,
        }

    def _on_req_sec_def_opt_params(self, conn: _Conn, f: list[str]) -> None:
        req_id, symbol, und_con_id = w.as_int(f[1]), f[2], w.as_int(f[5])
        und = self._stocks.get(symbol)
        for (sym, tc), chain in sorted(self._chains.items()):
            if sym != symbol or (und_con_id and und and und.con_id != und_con_id):
                continue
            expirations = [f"{e:%Y%m%d}" for e in sorted(chain["expiries"])]
            strikes = sorted(chain["strikes"])
            for exchange in chain["exchanges"]:
                conn.send(w.encode_sec_def_opt_params(req_id, exchange, und.con_id if und else und_con_id, tc,
                                                      str(chain["multiplier"]), expirations, strikes))
        conn.send(w.encode_sec_def_opt_params_end(req_id))

    # ================================================================== handlers: market data
    def _mkt_lines(self) -> int:
        return sum(len(c.mkt_subs) for c in self._live_conns())

    def _on_req_market_data_type(self, conn: _Conn, f: list[str]) -> None:
        conn.md_type = w.as_int(f[2], 1)
        allowed = self.market_data_permission or conn.md_type in (3, 4)
        conn.send(w.encode_market_data_type(-1, conn.md_type if allowed else 3))

    def _on_req_mkt_data(self, conn: _Conn, f: list[str]) -> None:
        req_id = w.as_int(f[2])
        contract = WireContract.parse(f, 3)
        pos = 3 + WireContract.N_FIELDS
        if contract.sec_type == "BAG":
            pos += 1 + 4 * w.as_int(f[pos])
        pos += 4 if w.as_bool(f[pos]) else 1
        generic, snapshot = f[pos], w.as_bool(f[pos + 1])
        inst = self._resolve_one(conn, req_id, contract)
        if inst is None:
            return
        if not snapshot and req_id not in conn.mkt_subs and self._mkt_lines() >= self.max_market_data_lines:
            self._error(conn, req_id, 101, MSG_MAX_TICKERS)
            return
        frozen = conn.md_type in (2, 4)
        if self.market_data_permission:
            md_type, delayed = (2 if frozen else 1), False
        else:
            md_type, delayed = (4 if conn.md_type == 4 else 3), True
            if conn.md_type in (1, 2):
                self._error(conn, req_id, 10167, MSG_DELAYED)
        sub = _MktSub(inst.con_id, frozenset(t.strip() for t in generic.split(",") if t.strip()), delayed)
        conn.send(w.encode_tick_req_params(req_id, inst.min_tick, "9c0001", 3),
                  w.encode_market_data_type(req_id, md_type))
        if not snapshot:
            conn.mkt_subs[req_id] = sub
        conn.send(self._encode_ticks(req_id, sub, self._level1_ticks(inst, None)))
        if inst.sec_type == "STK":
            conn.send(self._encode_ticks(req_id, sub, self._aggregate_ticks(inst.symbol)))
        if snapshot:
            conn.send(w.encode_tick_snapshot_end(req_id))

    def _on_cancel_mkt_data(self, conn: _Conn, f: list[str]) -> None:
        req_id = w.as_int(f[2])
        if conn.mkt_subs.pop(req_id, None) is None:
            self._error(conn, req_id, 300, f"Can't find EId with tickerId:{req_id}")

    def _update_quote(self, inst: Instrument, new: Quote) -> None:
        changed = new.changed(inst.quote)
        inst.quote = new
        if not changed:
            return
        ticks = self._level1_ticks(inst, changed)
        for conn in self._live_conns():
            for req_id, sub in conn.mkt_subs.items():
                if sub.con_id == inst.con_id:
                    conn.send(self._encode_ticks(req_id, sub, ticks))
        und = self._stocks.get(inst.symbol)
        if inst.sec_type == "OPT" and und is not None and changed & {"open_interest", "volume"}:
            agg = self._aggregate_ticks(inst.symbol)
            for conn in self._live_conns():
                for req_id, sub in conn.mkt_subs.items():
                    if sub.con_id == und.con_id:
                        conn.send(self._encode_ticks(req_id, sub, agg))
        if inst.sec_type == "STK" and changed & {"bid", "ask", "last"}:
            for opt in self._options.values():  # greeks carry the underlying price
                if opt.symbol == inst.symbol and opt.quote.und_price is None and self._has_greeks(opt.quote):
                    self._push_ticks(opt, self._level1_ticks(opt, {"greeks"}))
        if self.fill_mode == "marketable":
            for order in list(self._orders.values()):
                if order.working and order.inst is inst:
                    self._try_marketable(order)

    def _push_ticks(self, inst: Instrument, ticks: list[tuple[Any, ...]]) -> None:
        for conn in self._live_conns():
            for req_id, sub in conn.mkt_subs.items():
                if sub.con_id == inst.con_id:
                    conn.send(self._encode_ticks(req_id, sub, ticks))

    @staticmethod
    def _has_greeks(q: Quote) -> bool:
        return any(getattr(q, n) is not None for n in ("iv", "delta", "gamma", "vega", "theta"))

    def _level1_ticks(self, inst: Instrument, changed: set[str] | None) -> list[tuple[Any, ...]]:
        """("price", type, price, size) / ("size", type, size) / ("oi"|"optvol", type, size) /
        ("greeks", type, kwargs) for every field (changed=None) or the changed ones."""
        q = inst.quote

        def want(name: str) -> bool:
            return changed is None or name in changed

        ticks: list[tuple[Any, ...]] = []
        for side, price_type, size_type in (("bid", 1, 0), ("ask", 2, 3)):
            price, size = getattr(q, side), getattr(q, f"{side}_size")
            if want(side):
                ticks.append(("price", price_type, -1.0, 0.0) if price is None
                             else ("price", price_type, price, size))
            elif want(f"{side}_size") and price is not None:
                ticks.append(("size", size_type, size))
        if q.last is not None and want("last"):
            ticks.append(("price", 4, q.last, q.last_size))
        if want("volume"):
            ticks.append(("size", 8, q.volume))
        if inst.sec_type == "OPT":
            if want("open_interest"):
                ticks.append(("oi", 27 if inst.right == "C" else 28, q.open_interest))
            if want("volume"):
                ticks.append(("optvol", 29 if inst.right == "C" else 30, q.volume))
            if want("greeks") and self._has_greeks(q):
                und = self._stocks.get(inst.symbol)
                und_price = q.und_price
                if und_price is None and und is not None:
                    und_price = und.quote.mid or und.quote.last
                ticks.append(("greeks", 13, {
                    "implied_vol": q.iv, "delta": q.delta, "opt_price": q.mid, "pv_dividend": 0.0,
                    "gamma": q.gamma, "vega": q.vega, "theta": q.theta, "und_price": und_price}))
        return ticks

    def _aggregate_ticks(self, symbol: str) -> list[tuple[Any, ...]]:
        """Underlying-level option OI (27/28, generic 101) and volume (29/30, generic 100)."""
        opts = [o for o in self._options.values() if o.symbol == symbol]
        if not opts:
            return []

        def total(right: str, attr: str) -> float:
            return sum(getattr(o.quote, attr) for o in opts if o.right == right)

        return [("oi", 27, total("C", "open_interest")), ("oi", 28, total("P", "open_interest")),
                ("optvol", 29, total("C", "volume")), ("optvol", 30, total("P", "volume"))]

    @staticmethod
    def _encode_ticks(req_id: int, sub: _MktSub, ticks: list[tuple[Any, ...]]) -> bytes:
        out = []
        for kind, tick_type, *rest in ticks:
            if (kind == "oi" and "101" not in sub.generic) or (kind == "optvol" and "100" not in sub.generic):
                continue
            if sub.delayed:
                tick_type = DELAYED_TICK.get(tick_type, tick_type)
            if kind == "price":
                out.append(w.encode_tick_price(req_id, tick_type, rest[0], rest[1]))
            elif kind == "greeks":
                out.append(w.encode_tick_option_computation(req_id, tick_type, **rest[0]))
            else:
                out.append(w.encode_tick_size(req_id, tick_type, rest[0]))
        return b"".join(out)

    # ---------------------------------------------------------------- depth
    def _on_req_mkt_depth(self, conn: _Conn, f: list[str]) -> None:
        req_id = w.as_int(f[2])
        contract = WireContract.parse(f, 3)
        rows, smart = w.as_int(f[15], 5), w.as_bool(f[16])
        in_use = sum(len(c.depth_subs) for c in self._live_conns())
        if in_use >= self.max_depth_subscriptions:
            self._error(conn, req_id, 309, f"Max number ({self.max_depth_subscriptions}) of market depth "
                                           "requests has been reached")
            return
        inst = self._resolve_one(conn, req_id, contract)
        if inst is None:
            return
        sub = _DepthSub(inst.con_id, max(rows, 1), smart)
        conn.depth_subs[req_id] = sub
        conn.send(*self._depth_diff(req_id, sub, ([], []), self._books.get(inst.con_id, ([], []))))

    @staticmethod
    def _depth_diff(req_id: int, sub: _DepthSub, old: tuple[list, list],
                    new: tuple[list, list]) -> list[bytes]:
        """insert / update / delete messages turning book ``old`` into ``new`` (side 1 bid, 0 ask)."""
        out: list[bytes] = []

        def msg(position: int, op: int, side: int, price: float, size: float) -> bytes:
            if sub.smart:
                return w.encode_mkt_depth_l2(req_id, position, "", op, side, price, size, True)
            return w.encode_mkt_depth(req_id, position, op, side, price, size)

        for side, before, after in ((1, old[0][: sub.rows], new[0][: sub.rows]),
                                    (0, old[1][: sub.rows], new[1][: sub.rows])):
            for i, (price, size) in enumerate(after):
                if i >= len(before):
                    out.append(msg(i, 0, side, price, size))
                elif before[i] != (price, size):
                    out.append(msg(i, 1, side, price, size))
            for i in range(len(before) - 1, len(after) - 1, -1):
                out.append(msg(i, 2, side, before[i][0], 0))
        return out

    # ================================================================== handlers: orders
    def _on_place_order(self, conn: _Conn, f: list[str]) -> None:
        p = w.parse_place_order(f, conn.version)
        client_id = conn.client_id or 0
        existing = self._orders.get((client_id, p.order_id))
        inst = existing.inst if existing and not p.contract.con_id else None
        inst = inst or self._resolve_one(conn, p.order_id, p.contract)
        entry = self._order_log_entry(client_id, p, inst, existing)
        self._order_log.append(entry)
        if inst is None:
            return
        if p.what_if:
            self._answer_what_if(conn, p, inst)
            return
        if self._reject_next:
            code, message = self._reject_next.popleft()
            if existing is None:
                order = self._new_order(client_id, p, inst)
                order.status, order.completed_time, order.completed_status = "Inactive", _ib_time(), message
                entry["perm_id"] = order.perm_id
            entry["status"] = "Rejected"
            self._error(conn, p.order_id, code, message)
            return
        if existing is not None:
            if not existing.working:
                self._error(conn, p.order_id, 104, f"Cannot modify a {existing.status.lower()} order.")
                return
            order = existing
            order.lmt_price, order.aux_price, order.order_type = p.lmt_price, p.aux_price, p.order_type
            order.total_qty = p.total_qty
            order.remaining = max(p.total_qty - order.filled, 0.0)
            order.tif, order.order_ref, order.outside_rth = p.tif or order.tif, p.order_ref, p.outside_rth
            order.account = p.account or order.account
        else:
            order = self._new_order(client_id, p, inst)
        entry.update(perm_id=order.perm_id, status=order.status, filled=_num(order.filled),
                     remaining=_num(order.remaining), avg_fill_price=order.avg_fill_price)
        conn.send(self._encode_open_order(order, conn.version), self._encode_status(order))
        if self.fill_mode == "marketable":
            self._try_marketable(order)

    def _order_log_entry(self, client_id: int, p: w.PlacedOrder, inst: Instrument | None,
                         existing: OrderRec | None) -> dict[str, Any]:
        """The order as received (status fields are filled in once it is processed)."""
        c = p.contract
        return {
            "order_id": p.order_id, "perm_id": existing.perm_id if existing else None, "client_id": client_id,
            "order_ref": p.order_ref, "action": p.action, "total_qty": _num(p.total_qty),
            "order_type": p.order_type, "lmt_price": p.lmt_price, "aux_price": p.aux_price, "tif": p.tif,
            "status": None, "filled": None, "remaining": None, "avg_fill_price": None,
            "sec_type": inst.sec_type if inst else c.sec_type, "symbol": inst.symbol if inst else c.symbol,
            "con_id": inst.con_id if inst else c.con_id, "expiry": inst.expiry if inst else None,
            "strike": inst.strike if inst and inst.expiry else None,
            "right": inst.right or None if inst else None, "account": p.account or self.accounts[0],
            "ts": time.monotonic(),
            "modification": existing is not None, "what_if": p.what_if,
        }

    def _new_order(self, client_id: int, p: w.PlacedOrder, inst: Instrument) -> OrderRec:
        order = OrderRec(
            order_id=p.order_id, client_id=client_id, perm_id=next(self._perm_ids), inst=inst,
            exchange=p.contract.exchange or "SMART", action=p.action, total_qty=p.total_qty,
            order_type=p.order_type, lmt_price=p.lmt_price, aux_price=p.aux_price, tif=p.tif or "DAY",
            order_ref=p.order_ref, account=p.account or self.accounts[0], open_close=p.open_close or "O",
            origin=p.origin, outside_rth=p.outside_rth, oca_group=p.oca_group, status=self.new_order_status,
            remaining=p.total_qty,
        )
        self._orders[(client_id, p.order_id)] = order
        return order

    def _answer_what_if(self, conn: _Conn, p: w.PlacedOrder, inst: Instrument) -> None:
        price = p.lmt_price or inst.quote.ask or inst.quote.last or 0.0
        notional = price * p.total_qty * inst.multiplier
        equity = self._account_values_dict(p.account or self.accounts[0])["EquityWithLoanValue"]
        order = OrderRec(order_id=p.order_id, client_id=conn.client_id or 0, perm_id=0, inst=inst,
                         exchange=p.contract.exchange or "SMART", action=p.action, total_qty=p.total_qty,
                         order_type=p.order_type, lmt_price=p.lmt_price, aux_price=p.aux_price, tif=p.tif,
                         order_ref=p.order_ref, account=p.account or self.accounts[0], status="PreSubmitted")
        commission = self._commission(inst, p.total_qty)
        state = {
            "status": "PreSubmitted", "initMarginBefore": "0", "maintMarginBefore": "0",
            "equityWithLoanBefore": equity, "initMarginChange": w.fmt(notional),
            "maintMarginChange": w.fmt(notional), "equityWithLoanChange": w.fmt(-commission),
            "initMarginAfter": w.fmt(notional), "maintMarginAfter": w.fmt(notional),
            "equityWithLoanAfter": equity, "commission": commission, "minCommission": commission,
            "maxCommission": commission, "commissionCurrency": "USD",
        }
        fields = {**order.ib_fields(), "whatIf": True}
        conn.send(w.encode_open_order(order.contract(), fields, state, conn.version))

    def _encode_open_order(self, order: OrderRec, version: int) -> bytes:
        return w.encode_open_order(order.contract(), order.ib_fields(), {"status": order.status}, version)

    @staticmethod
    def _encode_status(order: OrderRec) -> bytes:
        return w.encode_order_status(order.order_id, order.status, order.filled, order.remaining,
                                     order.avg_fill_price, order.perm_id, 0, order.last_fill_price,
                                     order.client_id)

    def _on_cancel_order(self, conn: _Conn, f: list[str]) -> None:
        order_id = w.as_int(f[2])
        self._cancel_log.append(order_id)
        order = self._orders.get((conn.client_id or 0, order_id))
        if order is None:
            self._error(conn, order_id, 10147, f"OrderId {order_id} that needs to be cancelled is not found.")
        elif not order.working:
            self._error(conn, order_id, 10148, f"OrderId {order_id} that needs to be cancelled cannot be "
                                               f"cancelled, state: {order.status}.")
        else:
            self._cancel(order)

    def _on_global_cancel(self, conn: _Conn, f: list[str]) -> None:
        for order in list(self._orders.values()):
            if order.working:
                self._cancel(order)

    def _cancel(self, order: OrderRec, message: str = "Order Canceled - reason:") -> None:
        order.status, order.completed_time = "Cancelled", _ib_time()
        order.completed_status = "Cancelled by Trader"
        owner = self._conn_for_client(order.client_id)
        if owner is not None:
            owner.send(self._encode_status(order))
            self._error(owner, order.order_id, 202, message)

    def _find_order(self, ref: str | int) -> OrderRec:
        if isinstance(ref, bool) or not isinstance(ref, (str, int)):
            raise TypeError("order_ref (str) or IB orderId (int)")
        found = [o for o in self._orders.values() if (o.order_ref == ref if isinstance(ref, str)
                                                      else o.order_id == ref)]
        if not found:
            raise KeyError(f"no order {ref!r}")
        working = [o for o in found if o.working]
        return (working or found)[-1]

    def _try_marketable(self, order: OrderRec) -> None:
        q = order.inst.quote
        buy = order.action == "BUY"
        touch = q.ask if buy else q.bid
        if not order.working or touch is None or touch <= 0:
            return
        if order.order_type == "MKT" or (
            order.order_type == "LMT" and order.lmt_price is not None
            and (order.lmt_price >= touch - 1e-9 if buy else order.lmt_price <= touch + 1e-9)
        ):
            self._fill(order, None, touch)

    def _fill(self, order: OrderRec, qty: float | None, price: float | None) -> str:
        qty = float(order.remaining if qty is None else qty)
        if not 0 < qty <= order.remaining + 1e-9:
            raise ValueError(f"fill qty {qty} not within (0, {order.remaining}]")
        if price is None:
            q = order.inst.quote
            price = order.lmt_price if order.order_type != "MKT" and order.lmt_price is not None else (
                (q.ask if order.action == "BUY" else q.bid) or q.last)
            if price is None:
                raise ValueError("no price: pass price=")
        price = float(price)
        order.avg_fill_price = (order.avg_fill_price * order.filled + price * qty) / (order.filled + qty)
        order.filled += qty
        order.remaining = max(order.remaining - qty, 0.0)
        order.last_fill_price = price
        if order.remaining <= 1e-9:
            order.remaining = 0.0
            order.status, order.completed_time, order.completed_status = "Filled", _ib_time(), "Filled"
        elif order.status != "Submitted":
            order.status = "Submitted"
        commission = self._commission(order.inst, qty)
        signed = qty if order.action == "BUY" else -qty
        realized = self._apply_fill(order.account, order.inst, signed, price, commission)
        now = _now_eastern()
        ex = ExecRec(exec_id=f"0000e1a7.{next(self._exec_seq):08x}.01.01", order=order, time=_ib_time(now),
                     when=now, side="BOT" if order.action == "BUY" else "SLD", shares=qty, price=price,
                     cum_qty=order.filled, avg_price=order.avg_fill_price, commission=commission,
                     realized_pnl=realized)
        self._execs.append(ex)
        owner = self._conn_for_client(order.client_id)
        if owner is not None:
            exec_msg = w.encode_exec_details(-1, order.inst.wire(order.inst.venue), ex.ib_fields(),
                                             owner.version)
            status_msg = self._encode_status(order)
            owner.send(*((status_msg, exec_msg) if self.status_before_exec else (exec_msg, status_msg)))
        self._push_position(order.account, order.inst)
        if not self.withhold_commission:
            if self.commission_delay_s > 0 and self._loop is not None and self._loop.is_running():
                self._loop.call_later(self.commission_delay_s, self._release_commission, ex)
            else:
                self._release_commission(ex)
        return ex.exec_id

    def _commission(self, inst: Instrument, qty: float) -> float:
        if inst.sec_type == "STK":
            return round(max(self.commission_per_share * qty, self.min_stock_commission), 4)
        return round(self.commission_per_contract * qty, 4)

    def _release_commission(self, ex: ExecRec) -> None:
        if self.withhold_commission:
            return
        ex.commission_ready = True
        owner = self._conn_for_client(ex.order.client_id)
        if owner is not None:
            owner.send(self._encode_commission(ex))

    @staticmethod
    def _encode_commission(ex: ExecRec) -> bytes:
        return w.encode_commission_report(ex.exec_id, ex.commission, "USD", ex.realized_pnl)

    def _apply_fill(self, account: str, inst: Instrument, signed: float, price: float,
                    commission: float) -> float | None:
        """Update position and cash; returns the realized PnL (None for a purely opening fill)."""
        key = (account, inst.con_id)
        qty0, avg0 = self._positions.get(key, (0.0, 0.0))
        unit = price * inst.multiplier
        self._cash[account] = self._cash.get(account, self.net_liquidation) - signed * unit - commission
        per_unit_commission = commission / abs(signed)
        realized: float | None = None
        if qty0 == 0 or (qty0 > 0) == (signed > 0):
            new_qty = qty0 + signed
            direction = 1 if signed > 0 else -1
            cost = abs(qty0) * avg0 + abs(signed) * (unit + direction * per_unit_commission)
            new_avg = cost / abs(new_qty)
        else:
            closed = min(abs(qty0), abs(signed))
            direction = 1 if qty0 > 0 else -1
            realized = round((unit - avg0) * closed * direction - per_unit_commission * closed, 6)
            new_qty = qty0 + signed
            if new_qty == 0:
                new_avg = 0.0
            elif (new_qty > 0) == (qty0 > 0):
                new_avg = avg0
            else:  # crossed through zero: the rest opens a new position
                new_avg = unit + (1 if new_qty > 0 else -1) * per_unit_commission
            self._realized[key] = self._realized.get(key, 0.0) + realized
        if abs(new_qty) < 1e-9:
            self._positions.pop(key, None)
        else:
            self._positions[key] = (new_qty, round(new_avg, 8))
        return realized

    # ================================================================== handlers: replay
    def _answer_open_orders(self, conn: _Conn, *, all_clients: bool) -> None:
        for order in self._orders.values():
            if order.working and (all_clients or order.client_id == conn.client_id):
                conn.send(self._encode_open_order(order, conn.version), self._encode_status(order))
        conn.send(w.encode_open_order_end())

    def _on_req_completed_orders(self, conn: _Conn, f: list[str]) -> None:
        done = [o for o in self._orders.values() if not o.working]
        done.sort(key=lambda o: o.completed_time)
        for order in done:
            conn.send(w.encode_completed_order(order.contract(), order.ib_fields(), order.status,
                                               order.completed_time, order.completed_status, conn.version))
        conn.send(w.encode_completed_orders_end())

    def _on_req_executions(self, conn: _Conn, f: list[str]) -> None:
        f = f + [""] * 10
        req_id, client_id, acct, since, symbol, sec_type, exchange, side = (
            w.as_int(f[2]), w.as_int(f[3]), f[4], f[5], f[6], f[7], f[8], f[9])
        since_dt = self._parse_filter_time(since)
        side = {"BUY": "BOT", "SELL": "SLD"}.get(side.upper(), side.upper())
        for ex in self._execs:
            o = ex.order
            if ((client_id and o.client_id != client_id) or (acct and o.account != acct)
                    or (symbol and o.inst.symbol != symbol) or (sec_type and o.inst.sec_type != sec_type)
                    or (exchange and o.inst.venue != exchange) or (side and ex.side != side)
                    or (since_dt and ex.when < since_dt)):
                continue
            conn.send(w.encode_exec_details(req_id, o.inst.wire(o.inst.venue), ex.ib_fields(), conn.version))
            if ex.commission_ready:
                conn.send(self._encode_commission(ex))
        conn.send(w.encode_exec_details_end(req_id))

    @staticmethod
    def _parse_filter_time(text: str) -> dt.datetime | None:
        text = text.strip()
        if not text:
            return None
        try:
            if "-" in text:  # yyyymmdd-hh:mm:ss is UTC
                return dt.datetime.strptime(text, "%Y%m%d-%H:%M:%S").replace(tzinfo=dt.UTC)
            parts = text.split(" ")
            tz = ZoneInfo(parts[2]) if len(parts) > 2 else EASTERN
            return dt.datetime.strptime(" ".join(parts[:2]), "%Y%m%d %H:%M:%S").replace(tzinfo=tz)
        except (ValueError, KeyError):
            return None

    # ================================================================== handlers: account
    def _on_req_positions(self, conn: _Conn, f: list[str]) -> None:
        conn.positions_sub = True
        for (account, cid), (qty, avg) in self._positions.items():
            conn.send(w.encode_position(account, self._instruments[cid].wire(""), qty, avg))
        conn.send(w.encode_position_end())

    def _on_req_positions_multi(self, conn: _Conn, f: list[str]) -> None:
        req_id, account, model = w.as_int(f[2]), f[3], f[4] if len(f) > 4 else ""
        for (acct, cid), (qty, avg) in self._positions.items():
            if not account or account in (acct, "All"):
                contract = self._instruments[cid].wire("")
                conn.send(w.encode_position_multi(req_id, acct, model, contract, qty, avg))
        conn.send(w.encode_position_multi_end(req_id))

    def _on_req_account_updates(self, conn: _Conn, f: list[str]) -> None:
        subscribe, account = w.as_bool(f[2]), (f[3] if len(f) > 3 else "") or self.accounts[0]
        if not subscribe:
            conn.account_sub = None
            return
        conn.account_sub = account
        conn.send(*self._encode_account_values(account))
        for (acct, cid) in list(self._positions):
            if acct == account:
                conn.send(self._encode_portfolio(acct, self._instruments[cid]))
        conn.send(w.encode_account_update_time(f"{_now_eastern():%H:%M}"),
                  w.encode_account_download_end(account))

    def _on_req_account_updates_multi(self, conn: _Conn, f: list[str]) -> None:
        req_id, account, model = w.as_int(f[2]), f[3], f[4] if len(f) > 4 else ""
        for acct in self.accounts:
            if not account or account in (acct, "All"):
                for tag, value, cur in self._account_values(acct):
                    conn.send(w.encode_account_update_multi(req_id, acct, model, tag, value, cur))
        conn.send(w.encode_account_update_multi_end(req_id))

    def _on_req_account_summary(self, conn: _Conn, f: list[str]) -> None:
        req_id, tags = w.as_int(f[2]), {t.strip() for t in (f[4] if len(f) > 4 else "").split(",")}
        for acct in self.accounts:
            for tag, value, cur in self._account_values(acct):
                if tag in tags:
                    conn.send(w.encode_account_summary(req_id, acct, tag, value, cur))
        conn.send(w.encode_account_summary_end(req_id))

    def _account_values(self, account: str) -> list[tuple[str, str, str]]:
        cash = self._cash.get(account, self.net_liquidation)
        market_value = gross = 0.0
        for (acct, cid), (qty, avg) in self._positions.items():
            if acct == account:
                inst = self._instruments[cid]
                value = qty * inst.mark(avg / inst.multiplier) * inst.multiplier
                market_value += value
                gross += abs(value)
        net_liq = cash + market_value
        spent = self.net_liquidation - cash
        values = {
            "AccountType": ("INDIVIDUAL", ""), "NetLiquidation": (w.fmt(round(net_liq, 2)), "USD"),
            "TotalCashValue": (w.fmt(round(cash, 2)), "USD"),
            "BuyingPower": (w.fmt(round(max(self.buying_power - spent, 0.0), 2)), "USD"),
            "AvailableFunds": (w.fmt(round(max(cash, 0.0), 2)), "USD"),
            "ExcessLiquidity": (w.fmt(round(max(cash, 0.0), 2)), "USD"),
            "EquityWithLoanValue": (w.fmt(round(net_liq, 2)), "USD"),
            "GrossPositionValue": (w.fmt(round(gross, 2)), "USD"),
            "InitMarginReq": ("0", "USD"), "MaintMarginReq": ("0", "USD"),
        }
        for (acct, tag), value in self._account_overrides.items():
            if acct == account:
                values[tag] = value
        return [(tag, value, cur) for tag, (value, cur) in values.items()]

    def _encode_account_values(self, account: str) -> list[bytes]:
        return [w.encode_account_value(tag, value, cur, account)
                for tag, value, cur in self._account_values(account)]

    def _account_values_dict(self, account: str) -> dict[str, str]:
        return {t: v for t, v, _ in self._account_values(account)}

    def _encode_portfolio(self, account: str, inst: Instrument) -> bytes:
        qty, avg = self._positions.get((account, inst.con_id), (0.0, 0.0))
        price = inst.mark(avg / inst.multiplier if avg else 0.0)
        value = qty * price * inst.multiplier
        return w.encode_portfolio_value(inst.wire(""), qty, price, value, avg, value - qty * avg,
                                        self._realized.get((account, inst.con_id), 0.0), account)

    def _push_position(self, account: str, inst: Instrument) -> None:
        qty, avg = self._positions.get((account, inst.con_id), (0.0, 0.0))
        for conn in self._live_conns():
            if conn.positions_sub:
                conn.send(w.encode_position(account, inst.wire(""), qty, avg))
            if conn.account_sub == account:
                conn.send(self._encode_portfolio(account, inst))
        self._push_account(account)

    def _push_account(self, account: str) -> None:
        for conn in self._live_conns():
            if conn.account_sub == account:
                conn.send(*self._encode_account_values(account))


# ----------------------------------------------------------------------------- pytest fixture
try:
    import pytest
except ImportError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def fake_tws() -> Any:
        """A started FakeTWS (no instruments), stopped after the test."""
        with FakeTWS() as tws:
            yield tws
