"""Wire format of the Interactive Brokers TWS / IB Gateway API socket protocol.

Encoding and decoding helpers used by :mod:`tests.fakes.ib_tws`; nothing here
keeps state.  The layouts follow what ``ib_async`` (``client.py`` for what the
client sends, ``decoder.py`` for what it parses) expects at server versions
164..178:

- the client opens with ``b"API\\0"`` then a length-prefixed ``"v157..178"``;
- every later frame is a 4-byte big-endian length followed by NUL-terminated
  text fields; the server answers the handshake with ``[serverVersion,
  connectionTime]`` and afterwards each message starts with its message id.

One ``encode_*`` function per server -> client message kind (each returns the
framed bytes ready to write); ``parse_*`` helpers for client -> server
messages; :class:`WireContract` is the 12-field contract block both sides use.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

UNSET_DOUBLE_STR = "1.7976931348623157E308"  # how TWS spells Double.MAX_VALUE ("no value")
UNSET_DOUBLE = 1.7976931348623157e308
UNSET_INTEGER = 2**31 - 1


class IN:
    """Client -> server message ids (see ib_async ``client.py``)."""

    REQ_MKT_DATA = 1
    CANCEL_MKT_DATA = 2
    PLACE_ORDER = 3
    CANCEL_ORDER = 4
    REQ_OPEN_ORDERS = 5
    REQ_ACCOUNT_UPDATES = 6
    REQ_EXECUTIONS = 7
    REQ_IDS = 8
    REQ_CONTRACT_DETAILS = 9
    REQ_MKT_DEPTH = 10
    CANCEL_MKT_DEPTH = 11
    SET_SERVER_LOGLEVEL = 14
    REQ_AUTO_OPEN_ORDERS = 15
    REQ_ALL_OPEN_ORDERS = 16
    REQ_MANAGED_ACCTS = 17
    REQ_CURRENT_TIME = 49
    REQ_GLOBAL_CANCEL = 58
    REQ_MARKET_DATA_TYPE = 59
    REQ_POSITIONS = 61
    REQ_ACCOUNT_SUMMARY = 62
    CANCEL_ACCOUNT_SUMMARY = 63
    CANCEL_POSITIONS = 64
    START_API = 71
    REQ_POSITIONS_MULTI = 74
    CANCEL_POSITIONS_MULTI = 75
    REQ_ACCOUNT_UPDATES_MULTI = 76
    CANCEL_ACCOUNT_UPDATES_MULTI = 77
    REQ_SEC_DEF_OPT_PARAMS = 78
    REQ_COMPLETED_ORDERS = 99


class OUT:
    """Server -> client message ids (see ib_async ``decoder.py``)."""

    TICK_PRICE = 1
    TICK_SIZE = 2
    ORDER_STATUS = 3
    ERR_MSG = 4
    OPEN_ORDER = 5
    ACCT_VALUE = 6
    PORTFOLIO_VALUE = 7
    ACCT_UPDATE_TIME = 8
    NEXT_VALID_ID = 9
    CONTRACT_DATA = 10
    EXECUTION_DATA = 11
    MARKET_DEPTH = 12
    MARKET_DEPTH_L2 = 13
    MANAGED_ACCTS = 15
    TICK_OPTION_COMPUTATION = 21
    TICK_GENERIC = 45
    TICK_STRING = 46
    CURRENT_TIME = 49
    CONTRACT_DATA_END = 52
    OPEN_ORDER_END = 53
    ACCT_DOWNLOAD_END = 54
    EXECUTION_DATA_END = 55
    TICK_SNAPSHOT_END = 57
    MARKET_DATA_TYPE = 58
    COMMISSION_REPORT = 59
    POSITION_DATA = 61
    POSITION_END = 62
    ACCOUNT_SUMMARY = 63
    ACCOUNT_SUMMARY_END = 64
    POSITION_MULTI = 71
    POSITION_MULTI_END = 72
    ACCOUNT_UPDATE_MULTI = 73
    ACCOUNT_UPDATE_MULTI_END = 74
    SECURITY_DEFINITION_OPTION_PARAMETER = 75
    SECURITY_DEFINITION_OPTION_PARAMETER_END = 76
    TICK_REQ_PARAMS = 81
    COMPLETED_ORDER = 101
    COMPLETED_ORDERS_END = 102


# ----------------------------------------------------------------------------- framing
def fmt(value: Any) -> str:
    """One field as TWS writes it: None -> "", bools "1"/"0", integral floats without ".0"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if math.isinf(value) or value >= UNSET_DOUBLE:
            return UNSET_DOUBLE_STR if value > 0 else "-" + UNSET_DOUBLE_STR
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(round(value, 10))
    return str(value)


def frame(*fields: Any) -> bytes:
    """Length-prefixed frame of NUL-terminated fields."""
    payload = "".join(fmt(f) + "\0" for f in fields).encode("utf-8")
    return struct.pack(">I", len(payload)) + payload


def split_frames(buffer: bytearray) -> list[list[str]]:
    """Pop every complete frame off ``buffer`` (in place) and return their fields."""
    out: list[list[str]] = []
    while len(buffer) >= 4:
        (size,) = struct.unpack(">I", buffer[:4])
        if len(buffer) < 4 + size:
            break
        payload = bytes(buffer[4 : 4 + size])
        del buffer[: 4 + size]
        fields = payload.decode("utf-8", errors="replace").split("\0")
        if fields and fields[-1] == "":
            fields.pop()
        out.append(fields)
    return out


def parse_version_range(text: str) -> tuple[int, int]:
    """``"v157..178"`` (optionally followed by `` +PACEAPI``) -> (157, 178)."""
    head = text.strip().split(" ")[0]
    if not head.startswith("v"):
        raise ValueError(f"bad API version string {text!r}")
    lo, _, hi = head[1:].partition("..")
    return int(lo), int(hi or lo)


# ----------------------------------------------------------------------------- contracts
@dataclass
class WireContract:
    """The 12-field contract block (``conId .. tradingClass``) of ib_async's ``Client.send``."""

    con_id: int = 0
    symbol: str = ""
    sec_type: str = ""
    last_trade_date: str = ""
    strike: float = 0.0
    right: str = ""
    multiplier: str = ""
    exchange: str = ""
    primary_exchange: str = ""
    currency: str = ""
    local_symbol: str = ""
    trading_class: str = ""

    N_FIELDS = 12

    @classmethod
    def parse(cls, fields: Sequence[str], start: int) -> WireContract:
        f = list(fields[start : start + cls.N_FIELDS])
        f += [""] * (cls.N_FIELDS - len(f))
        return cls(
            con_id=as_int(f[0]),
            symbol=f[1],
            sec_type=f[2],
            last_trade_date=f[3],
            strike=as_float(f[4]),
            right=f[5],
            multiplier=f[6],
            exchange=f[7],
            primary_exchange=f[8],
            currency=f[9],
            local_symbol=f[10],
            trading_class=f[11],
        )


def as_int(text: str, default: int = 0) -> int:
    try:
        return int(float(text)) if text else default
    except ValueError:
        return default


def as_float(text: str, default: float = 0.0) -> float:
    try:
        value = float(text) if text else default
    except ValueError:
        return default
    return default if value >= UNSET_DOUBLE else value


def as_bool(text: str) -> bool:
    return bool(as_int(text))


# ----------------------------------------------------------------------------- client -> server
@dataclass
class PlacedOrder:
    """The parts of a ``placeOrder`` message the fake uses (``raw`` keeps every field)."""

    order_id: int
    contract: WireContract
    action: str
    total_qty: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    oca_group: str
    account: str
    open_close: str
    origin: int
    order_ref: str
    transmit: bool
    parent_id: int
    outside_rth: bool
    hidden: bool
    what_if: bool = False
    algo_strategy: str = ""
    raw: list[str] = field(default_factory=list)


def _opt_price(text: str) -> float | None:
    if text == "":
        return None
    value = as_float(text, UNSET_DOUBLE)
    return None if value >= UNSET_DOUBLE else value


def parse_place_order(fields: Sequence[str], server_version: int) -> PlacedOrder:
    """Walk a placeOrder message in the order ib_async's ``Client.placeOrder`` writes it."""
    f = list(fields)
    pos = 1

    def take(n: int = 1) -> list[str]:
        nonlocal pos
        out = f[pos : pos + n]
        out += [""] * (n - len(out))
        pos += n
        return out

    (order_id,) = take()
    contract = WireContract.parse(f, pos)
    pos += WireContract.N_FIELDS
    take(2)  # secIdType, secId
    (action, qty, order_type, lmt, aux, tif, oca, account, open_close, origin, order_ref, transmit,
     parent_id, _block, _sweep, _display, _trigger, outside_rth, hidden) = take(19)
    if contract.sec_type == "BAG":
        (n_legs,) = take()
        take(8 * as_int(n_legs))
        (n_order_legs,) = take()
        take(as_int(n_order_legs))
        (n_params,) = take()
        take(2 * as_int(n_params))
    take(7)  # "", discretionaryAmt, goodAfterTime, goodTillDate, faGroup, faMethod, faPercentage
    if server_version < 177:
        take()  # faProfile
    # modelCode .. deltaNeutralOrderType, deltaNeutralAuxPrice
    head = take(24)
    if head[22]:  # deltaNeutralOrderType
        take(8)
    take(6)  # continuousUpdate .. scaleSubsLevelSize
    (increment,) = take()
    inc = as_float(increment, UNSET_DOUBLE)
    if 0 < inc < UNSET_DOUBLE:
        take(7)
    take(3)  # scaleTable, activeStartTime, activeStopTime
    (hedge_type,) = take()
    if hedge_type:
        take()
    take(4)  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
    (dnc,) = take()
    if as_bool(dnc):
        take(3)
    (algo,) = take()
    if algo:
        (n_algo,) = take()
        take(2 * as_int(n_algo))
    (_algo_id, what_if) = take(2)
    return PlacedOrder(
        order_id=as_int(order_id),
        contract=contract,
        action=action.upper(),
        total_qty=as_float(qty),
        order_type=order_type.upper(),
        lmt_price=_opt_price(lmt),
        aux_price=_opt_price(aux),
        tif=tif,
        oca_group=oca,
        account=account,
        open_close=open_close,
        origin=as_int(origin),
        order_ref=order_ref,
        transmit=as_bool(transmit) if transmit else True,
        parent_id=as_int(parent_id),
        outside_rth=as_bool(outside_rth),
        hidden=as_bool(hidden),
        what_if=as_bool(what_if),
        algo_strategy=algo,
        raw=f,
    )


# ----------------------------------------------------------------------------- server -> client
def encode_handshake(server_version: int, connection_time: str) -> bytes:
    return frame(server_version, connection_time)


def encode_managed_accounts(accounts: Iterable[str]) -> bytes:
    return frame(OUT.MANAGED_ACCTS, 1, ",".join(accounts))


def encode_next_valid_id(order_id: int) -> bytes:
    return frame(OUT.NEXT_VALID_ID, 1, order_id)


def encode_error(req_id: int, code: int, message: str, server_version: int, advanced_json: str = "") -> bytes:
    fields: list[Any] = [OUT.ERR_MSG, 2, req_id, code, message]
    if server_version >= 166:
        fields.append(advanced_json)
    return frame(*fields)


def encode_current_time(epoch: int) -> bytes:
    return frame(OUT.CURRENT_TIME, 1, epoch)


# --- market data
def encode_tick_price(req_id: int, tick_type: int, price: float, size: float, attr_mask: int = 0) -> bytes:
    return frame(OUT.TICK_PRICE, 6, req_id, tick_type, float(price), float(size), attr_mask)


def encode_tick_size(req_id: int, tick_type: int, size: float) -> bytes:
    return frame(OUT.TICK_SIZE, 6, req_id, tick_type, float(size))


def encode_tick_generic(req_id: int, tick_type: int, value: float) -> bytes:
    return frame(OUT.TICK_GENERIC, 6, req_id, tick_type, float(value))


def encode_tick_string(req_id: int, tick_type: int, value: str) -> bytes:
    return frame(OUT.TICK_STRING, 6, req_id, tick_type, value)


def encode_tick_option_computation(
    req_id: int,
    tick_type: int,
    *,
    implied_vol: float | None,
    delta: float | None,
    opt_price: float | None,
    pv_dividend: float | None,
    gamma: float | None,
    vega: float | None,
    theta: float | None,
    und_price: float | None,
    tick_attrib: int = 0,
) -> bytes:
    """Server >= 156 layout (no version field); "not computed" is -1 for prices/iv, -2 for greeks."""

    def v(x: float | None, unset: float) -> float:
        return unset if x is None else float(x)

    return frame(
        OUT.TICK_OPTION_COMPUTATION, req_id, tick_type, tick_attrib,
        v(implied_vol, -1.0), v(delta, -2.0), v(opt_price, -1.0), v(pv_dividend, -1.0),
        v(gamma, -2.0), v(vega, -2.0), v(theta, -2.0), v(und_price, -1.0),
    )


def encode_tick_req_params(req_id: int, min_tick: float, bbo_exchange: str,
                           snapshot_permissions: int) -> bytes:
    return frame(OUT.TICK_REQ_PARAMS, req_id, float(min_tick), bbo_exchange, snapshot_permissions)


def encode_tick_snapshot_end(req_id: int) -> bytes:
    return frame(OUT.TICK_SNAPSHOT_END, 1, req_id)


def encode_market_data_type(req_id: int, market_data_type: int) -> bytes:
    return frame(OUT.MARKET_DATA_TYPE, 1, req_id, market_data_type)


def encode_mkt_depth(req_id: int, position: int, operation: int, side: int, price: float,
                     size: float) -> bytes:
    """operation 0 insert / 1 update / 2 delete; side 0 ask / 1 bid."""
    return frame(OUT.MARKET_DEPTH, 1, req_id, position, operation, side, float(price), float(size))


def encode_mkt_depth_l2(
    req_id: int, position: int, market_maker: str, operation: int, side: int, price: float, size: float,
    is_smart_depth: bool,
) -> bytes:
    return frame(OUT.MARKET_DEPTH_L2, 1, req_id, position, market_maker, operation, side, float(price),
                 float(size), is_smart_depth)


# --- contracts
def encode_contract_data(req_id: int, c: WireContract, d: Mapping[str, Any]) -> bytes:
    """contractDetails at server >= 164 (no version field), field for field as decoder.py reads it."""
    return frame(
        OUT.CONTRACT_DATA, req_id,
        c.symbol, c.sec_type, c.last_trade_date, c.strike, c.right, c.exchange, c.currency,
        c.local_symbol, d.get("marketName", c.trading_class), c.trading_class, c.con_id,
        d.get("minTick", 0.01),
        c.multiplier, d.get("orderTypes", ""), d.get("validExchanges", ""), d.get("priceMagnifier", 1),
        d.get("underConId", 0), d.get("longName", ""), c.primary_exchange, d.get("contractMonth", ""),
        d.get("industry", ""), d.get("category", ""), d.get("subcategory", ""),
        d.get("timeZoneId", "US/Eastern"), d.get("tradingHours", ""), d.get("liquidHours", ""),
        d.get("evRule", ""), d.get("evMultiplier", ""),
        0,  # numSecIds
        d.get("aggGroup", 1), d.get("underSymbol", ""), d.get("underSecType", ""),
        d.get("marketRuleIds", ""), d.get("realExpirationDate", ""), d.get("stockType", ""),
        d.get("minSize", 1), d.get("sizeIncrement", 1), d.get("suggestedSizeIncrement", 1),
    )


def encode_contract_data_end(req_id: int) -> bytes:
    return frame(OUT.CONTRACT_DATA_END, 1, req_id)


def encode_sec_def_opt_params(
    req_id: int, exchange: str, underlying_con_id: int, trading_class: str, multiplier: str,
    expirations: Sequence[str], strikes: Sequence[float],
) -> bytes:
    return frame(OUT.SECURITY_DEFINITION_OPTION_PARAMETER, req_id, exchange, underlying_con_id, trading_class,
                 multiplier, len(expirations), *expirations, len(strikes), *[float(s) for s in strikes])


def encode_sec_def_opt_params_end(req_id: int) -> bytes:
    return frame(OUT.SECURITY_DEFINITION_OPTION_PARAMETER_END, req_id)


# --- orders
class _FieldList:
    """Builds a message from field names in the decoder's order; unnamed values default to ""."""

    def __init__(self, values: Mapping[str, Any], *head: Any) -> None:
        self.values = values
        self.out: list[Any] = list(head)

    def names(self, *names: str) -> _FieldList:
        for name in names:
            self.out.append(self.values.get(name, ""))
        return self

    def raw(self, *values: Any) -> _FieldList:
        self.out.extend(values)
        return self

    def contract(self, c: WireContract) -> _FieldList:
        """conId .. tradingClass without primaryExchange (the openOrder / completedOrder block)."""
        return self.raw(c.con_id, c.symbol, c.sec_type, c.last_trade_date, c.strike, c.right, c.multiplier,
                        c.exchange, c.currency, c.local_symbol, c.trading_class)

    def encode(self) -> bytes:
        return frame(*self.out)


def encode_open_order(c: WireContract, order: Mapping[str, Any], state: Mapping[str, Any],
                      server_version: int) -> bytes:
    """openOrder, mirroring ``Decoder.openOrder`` field by field.

    ``order`` uses ib_async ``Order`` attribute names (orderId, action, totalQuantity, orderType,
    lmtPrice, auxPrice, tif, account, openClose, origin, orderRef, clientId, permId, ...);
    ``state`` uses ``OrderState`` names (status, initMarginChange, commission, ...).  Every
    count field is 0 and every variable-length group is absent.
    """
    b = _FieldList(order, OUT.OPEN_ORDER)
    b.names("orderId").contract(c)
    b.names("action", "totalQuantity", "orderType", "lmtPrice", "auxPrice", "tif", "ocaGroup", "account",
            "openClose", "origin", "orderRef", "clientId", "permId", "outsideRth", "hidden",
            "discretionaryAmt", "goodAfterTime")
    b.raw("")  # deprecated sharesAllocation
    b.names("faGroup", "faMethod", "faPercentage")
    if server_version < 177:
        b.names("faProfile")
    b.names("modelCode", "goodTillDate", "rule80A", "percentOffset", "settlingFirm", "shortSaleSlot",
            "designatedLocation", "exemptCode", "auctionStrategy", "startingPrice", "stockRefPrice", "delta",
            "stockRangeLower", "stockRangeUpper", "displaySize", "blockOrder", "sweepToFill", "allOrNone",
            "minQty", "ocaType", "eTradeOnly", "firmQuoteOnly", "nbboPriceCap", "parentId", "triggerMethod",
            "volatility", "volatilityType")
    b.raw("", "")  # deltaNeutralOrderType (empty: no delta-neutral block), deltaNeutralAuxPrice
    b.names("continuousUpdate", "referencePriceType", "trailStopPrice", "trailingPercent", "basisPoints",
            "basisPointsType")
    b.raw("")  # comboLegsDescrip
    b.raw(0, 0, 0)  # comboLegs, orderComboLegs, smartComboRoutingParams
    b.names("scaleInitLevelSize", "scaleSubsLevelSize")
    b.raw("")  # scalePriceIncrement (empty: no scale block)
    b.raw("")  # hedgeType (empty: no hedgeParam)
    b.names("optOutSmartRouting", "clearingAccount", "clearingIntent", "notHeld")
    b.raw(0)  # deltaNeutralContract present
    b.raw("")  # algoStrategy (empty: no algo params)
    b.names("solicited", "whatIf")
    s = _FieldList(state)
    s.names("status", "initMarginBefore", "maintMarginBefore", "equityWithLoanBefore", "initMarginChange",
            "maintMarginChange", "equityWithLoanChange", "initMarginAfter", "maintMarginAfter",
            "equityWithLoanAfter", "commission", "minCommission", "maxCommission", "commissionCurrency",
            "warningText")
    b.raw(*s.out)
    b.names("randomizeSize", "randomizePrice")
    if order.get("orderType") in ("PEG BENCH", "PEGBENCH"):
        b.names("referenceContractId", "isPeggedChangeAmountDecrease", "peggedChangeAmount",
                "referenceChangeAmount", "referenceExchangeId")
    b.raw(0)  # conditions
    b.names("adjustedOrderType", "triggerPrice", "trailStopPrice", "lmtPriceOffset", "adjustedStopPrice",
            "adjustedStopLimitPrice", "adjustedTrailingAmount", "adjustableTrailingUnit")
    b.raw("", "", "")  # softDollarTier name, val, displayName
    b.names("cashQty", "dontUseAutoPriceForHedge", "isOmsContainer", "discretionaryUpToLimitPrice",
            "usePriceMgmtAlgo")
    if server_version >= 159:
        b.names("duration")
    if server_version >= 160:
        b.names("postToAts")
    if server_version >= 162:
        b.names("autoCancelParent")
    if server_version >= 170:
        b.names("minTradeQty", "minCompeteSize", "competeAgainstBestOffset", "midOffsetAtWhole",
                "midOffsetAtHalf")
    return b.encode()


def encode_open_order_end() -> bytes:
    return frame(OUT.OPEN_ORDER_END, 1)


def encode_order_status(
    order_id: int, status: str, filled: float, remaining: float, avg_fill_price: float, perm_id: int,
    parent_id: int, last_fill_price: float, client_id: int, why_held: str = "", mkt_cap_price: float = 0.0,
) -> bytes:
    """orderStatus at server >= 131: no version field."""
    return frame(OUT.ORDER_STATUS, order_id, status, float(filled), float(remaining), float(avg_fill_price),
                 perm_id, parent_id, float(last_fill_price), client_id, why_held, float(mkt_cap_price))


def encode_completed_order(c: WireContract, order: Mapping[str, Any], status: str, completed_time: str,
                           completed_status: str, server_version: int) -> bytes:
    """completedOrder, mirroring ``Decoder.completedOrder`` field by field (no orderId/clientId)."""
    b = _FieldList(order, OUT.COMPLETED_ORDER)
    b.contract(c)
    b.names("action", "totalQuantity", "orderType", "lmtPrice", "auxPrice", "tif", "ocaGroup", "account",
            "openClose", "origin", "orderRef", "permId", "outsideRth", "hidden", "discretionaryAmt",
            "goodAfterTime", "faGroup", "faMethod", "faPercentage")
    if server_version < 177:
        b.names("faProfile")
    b.names("modelCode", "goodTillDate", "rule80A", "percentOffset", "settlingFirm", "shortSaleSlot",
            "designatedLocation", "exemptCode", "startingPrice", "stockRefPrice", "delta", "stockRangeLower",
            "stockRangeUpper", "displaySize", "sweepToFill", "allOrNone", "minQty", "ocaType",
            "triggerMethod", "volatility", "volatilityType")
    b.raw("", "")  # deltaNeutralOrderType (empty), deltaNeutralAuxPrice
    b.names("continuousUpdate", "referencePriceType", "trailStopPrice", "trailingPercent")
    b.raw("")  # comboLegsDescrip
    b.raw(0, 0, 0)  # comboLegs, orderComboLegs, smartComboRoutingParams
    b.names("scaleInitLevelSize", "scaleSubsLevelSize")
    b.raw("", "")  # scalePriceIncrement, hedgeType
    b.names("clearingAccount", "clearingIntent", "notHeld")
    b.raw(0, "")  # deltaNeutralContract present, algoStrategy
    b.names("solicited")
    b.raw(status)
    b.names("randomizeSize", "randomizePrice")
    if order.get("orderType") in ("PEG BENCH", "PEGBENCH"):
        b.names("referenceContractId", "isPeggedChangeAmountDecrease", "peggedChangeAmount",
                "referenceChangeAmount", "referenceExchangeId")
    b.raw(0)  # conditions
    b.names("trailStopPrice", "lmtPriceOffset", "cashQty", "dontUseAutoPriceForHedge", "isOmsContainer",
            "autoCancelDate", "filledQuantity", "refFuturesConId", "autoCancelParent", "shareholder",
            "imbalanceOnly", "routeMarketableToBbo", "parentPermId")
    b.raw(completed_time, completed_status)
    if server_version >= 170:
        b.names("minTradeQty", "minCompeteSize", "competeAgainstBestOffset", "midOffsetAtWhole",
                "midOffsetAtHalf")
    return b.encode()


def encode_completed_orders_end() -> bytes:
    return frame(OUT.COMPLETED_ORDERS_END)


def encode_exec_details(req_id: int, c: WireContract, e: Mapping[str, Any], server_version: int) -> bytes:
    """execDetails (no version field); ``e`` uses ib_async ``Execution`` attribute names."""
    fields: list[Any] = [
        OUT.EXECUTION_DATA, req_id, e["orderId"],
        c.con_id, c.symbol, c.sec_type, c.last_trade_date, c.strike, c.right, c.multiplier, c.exchange,
        c.currency, c.local_symbol, c.trading_class,
        e["execId"], e["time"], e["acctNumber"], e["exchange"], e["side"], float(e["shares"]),
        float(e["price"]), e["permId"], e["clientId"], e.get("liquidation", 0), float(e["cumQty"]),
        float(e["avgPrice"]), e.get("orderRef", ""), e.get("evRule", ""), e.get("evMultiplier", ""),
        e.get("modelCode", ""), e.get("lastLiquidity", 2),
    ]
    if server_version >= 178:
        fields.append(e.get("pendingPriceRevision", 0))
    return frame(*fields)


def encode_exec_details_end(req_id: int) -> bytes:
    return frame(OUT.EXECUTION_DATA_END, 1, req_id)


def encode_commission_report(exec_id: str, commission: float, currency: str, realized_pnl: float | None,
                             yield_: float | None = None, yield_redemption_date: int | None = None) -> bytes:
    """``None`` realized PnL / yield are sent as Double.MAX_VALUE, like TWS does for opening trades."""
    return frame(OUT.COMMISSION_REPORT, 1, exec_id, float(commission), currency,
                 UNSET_DOUBLE_STR if realized_pnl is None else float(realized_pnl),
                 UNSET_DOUBLE_STR if yield_ is None else float(yield_),
                 "" if yield_redemption_date is None else yield_redemption_date)


# --- account
def encode_position(account: str, c: WireContract, position: float, avg_cost: float) -> bytes:
    return frame(OUT.POSITION_DATA, 3, account, c.con_id, c.symbol, c.sec_type, c.last_trade_date, c.strike,
                 c.right, c.multiplier, c.exchange, c.currency, c.local_symbol, c.trading_class,
                 float(position), float(avg_cost))


def encode_position_end() -> bytes:
    return frame(OUT.POSITION_END, 1)


def encode_position_multi(req_id: int, account: str, model_code: str, c: WireContract, position: float,
                          avg_cost: float) -> bytes:
    return frame(OUT.POSITION_MULTI, 1, req_id, account, c.con_id, c.symbol, c.sec_type, c.last_trade_date,
                 c.strike, c.right, c.multiplier, c.exchange, c.currency, c.local_symbol, c.trading_class,
                 float(position), float(avg_cost), model_code)


def encode_position_multi_end(req_id: int) -> bytes:
    return frame(OUT.POSITION_MULTI_END, 1, req_id)


def encode_account_value(key: str, value: str, currency: str, account: str) -> bytes:
    return frame(OUT.ACCT_VALUE, 2, key, value, currency, account)


def encode_portfolio_value(
    c: WireContract, position: float, market_price: float, market_value: float, average_cost: float,
    unrealized_pnl: float, realized_pnl: float, account: str,
) -> bytes:
    return frame(OUT.PORTFOLIO_VALUE, 8, c.con_id, c.symbol, c.sec_type, c.last_trade_date, c.strike, c.right,
                 c.multiplier, c.primary_exchange, c.currency, c.local_symbol, c.trading_class,
                 float(position), float(market_price), float(market_value), float(average_cost),
                 float(unrealized_pnl), float(realized_pnl), account)


def encode_account_update_time(hhmm: str) -> bytes:
    return frame(OUT.ACCT_UPDATE_TIME, 1, hhmm)


def encode_account_download_end(account: str) -> bytes:
    return frame(OUT.ACCT_DOWNLOAD_END, 1, account)


def encode_account_summary(req_id: int, account: str, tag: str, value: str, currency: str) -> bytes:
    return frame(OUT.ACCOUNT_SUMMARY, 1, req_id, account, tag, value, currency)


def encode_account_summary_end(req_id: int) -> bytes:
    return frame(OUT.ACCOUNT_SUMMARY_END, 1, req_id)


def encode_account_update_multi(req_id: int, account: str, model_code: str, key: str, value: str,
                                currency: str) -> bytes:
    return frame(OUT.ACCOUNT_UPDATE_MULTI, 1, req_id, account, model_code, key, value, currency)


def encode_account_update_multi_end(req_id: int) -> bytes:
    return frame(OUT.ACCOUNT_UPDATE_MULTI_END, 1, req_id)
