"""IB error / notice handling of one connection, and the market data type IB actually serves.

``errorEvent`` codes are dispatched in :meth:`IbNoticeHandler._handle_error` (the codes are listed
in :mod:`core.ibkr.ib_codes`). ``marketDataType`` messages and 10167 update the worst type among
the live requests; a downgrade raises one WARNING ``MARKET_DATA_DELAYED`` (cleared when the
requested type is back). Mixed into :class:`~core.ibkr.connection.IbConnection`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import ib_async

from core.config.model import IbkrSettings
from core.ibkr.ib_codes import MD_NAMES, NOT_SUBSCRIBED, PACING, TWS_LOST
from core.runtime.metrics import REJECTED

log = logging.getLogger("quanticity.ibkr.connection")


class IbNoticeHandler:
    """Reacts to IB's error / notice codes and to ``marketDataType`` messages."""

    settings: IbkrSettings
    role: str
    ib: ib_async.IB
    connected: bool
    requested_market_data_type: int
    market_data_type: int
    pacing_violations: int
    _state: str
    _refused: bool
    _tws_lost: bool
    _farm_broken: bool
    _md_by_req: dict[int, int]
    _md_alerted: bool
    _not_subscribed_alerted: bool
    _competing_alerted: bool
    _restore_timer: asyncio.TimerHandle | None
    _set_state: Callable[..., None]
    _alert: Callable[[str, str, str, str], None]
    _mark_lost: Callable[..., None]
    _tws_lost_grace_over: Callable[[], None]
    _spawn: Callable[..., None]
    _run_ready: Callable[..., Any]

    def _on_error(self, req_id: int, code: int, message: str, contract: Any = None) -> None:
        try:
            self._handle_error(req_id, code, message)
        except Exception:
            log.exception("ibkr %s: error handler failed for %s", self.role, code)

    def _handle_error(self, req_id: int, code: int, message: str) -> None:
        if code == 326:
            self._refused = True
        elif code in TWS_LOST:
            self._tws_lost = True
            self._mark_lost(code, reconnect=False)
            if self._restore_timer is None and self.role != "check":
                self._restore_timer = asyncio.get_running_loop().call_later(
                    self.settings.reconnect_max_s, self._tws_lost_grace_over)
        elif code == 1300:
            self._mark_lost(code, reconnect=True)
            asyncio.get_running_loop().call_soon(self.ib.disconnect)  # not from inside the decoder
        elif code in (1101, 1102):
            if self._restore_timer is not None:
                self._restore_timer.cancel()
                self._restore_timer = None
            if self._tws_lost and self.ib.isConnected():
                self._tws_lost = False
                self.connected = True
                self._set_state("connected", code, connected=True)
            if code == 1101:
                self._spawn(self._run_ready(False))
        elif code == 2103:
            log.warning("ibkr %s: market data farm broken: %s", self.role, message)
            self._farm_broken = True
        elif code == 2104 and self._farm_broken:
            self._farm_broken = False
            self._spawn(self._run_ready(False))
        elif code == 10197:
            if not self._competing_alerted:
                self._competing_alerted = True
                self._alert("IB_COMPETING_SESSION", "WARNING", "raised",
                            f"IB serves no market data to {self.role}: a competing live session is logged in "
                            f"(10197) - log out of the other TWS / mobile session")
        elif code in PACING:
            self.pacing_violations += 1
            REJECTED.labels(f"ibkr_{self.role}", "pacing").inc()
            log.warning("ibkr %s: pacing violation %d: %s", self.role, code, message)
        elif code == 10167:
            self._md_report(req_id, 3)
        elif code in NOT_SUBSCRIBED:
            if not self._not_subscribed_alerted:
                self._not_subscribed_alerted = True
                self._alert("MARKET_DATA_DELAYED", "WARNING", "raised",
                            f"IB serves no market data for some requests ({code}: not subscribed): {message}")
        elif code == 101:
            REJECTED.labels(f"ibkr_{self.role}", "max_tickers").inc()

    # ------------------------------------------------------------------ market data type
    def _hook_market_data_type(self) -> None:
        """ib_async only stores ``marketDataType`` on the ticker; wrap the wrapper method to see it."""
        wrapper = self.ib.wrapper
        original = wrapper.marketDataType

        def market_data_type(req_id: int, md_type: int) -> None:
            original(req_id, md_type)
            try:
                self._md_report(req_id, md_type)
            except Exception:
                log.exception("ibkr %s: marketDataType handler failed", self.role)

        wrapper.marketDataType = market_data_type  # type: ignore[method-assign]

    def _md_report(self, req_id: int, md_type: int) -> None:
        if md_type not in MD_NAMES:
            return
        self._md_by_req[req_id] = md_type
        live = set(self.ib.wrapper.ticker2ReqId.get("mktData", {}).values()) | {-1, req_id}
        for rid in [r for r in self._md_by_req if r not in live]:
            del self._md_by_req[rid]
        worst = max(self._md_by_req.values())
        if worst == self.market_data_type:
            return
        self.market_data_type = worst
        downgraded = worst > self.requested_market_data_type
        log.log(logging.WARNING if downgraded else logging.INFO, "ibkr %s: IB serves %s market data (asked %s)",
                self.role, MD_NAMES[worst], MD_NAMES[self.requested_market_data_type])
        alerts = []
        if downgraded and not self._md_alerted:
            self._md_alerted = True
            alerts.append({"code": "MARKET_DATA_DELAYED", "severity": "WARNING", "state": "raised", "message": (
                f"IBKR serves {MD_NAMES[worst]} market data, not {MD_NAMES[self.requested_market_data_type]}: "
                "quotes lag or do not move - check the account's market-data subscriptions")})
        elif not downgraded and self._md_alerted:
            self._md_alerted = False
            alerts.append({"code": "MARKET_DATA_DELAYED", "severity": "WARNING", "state": "cleared",
                           "message": f"IBKR serves {MD_NAMES[worst]} market data again"})
        self._set_state(self._state, 0, connected=self.connected, alerts=alerts, market_data=True)
