"""Builders and the harness of the Telegram bot tests."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

from bot.telegram import TelegramBotService
from core.approvals.service import ApprovalService
from core.bus.bus import Bus
from core.bus.events import Event, PositionEvent, VerdictEvent, decode
from core.clock.clock import LiveClock
from core.domain.signal import Signal
from core.runtime.consumers import consumer_for
from tests.fakes.telegram_api import FakeTelegram

ADMIN = 1001
ADMIN2 = 1002
STRANGER = 6666
ADMIN_CHAT = -100500


class ShiftClock(LiveClock):
    """Wall-speed clock that a test can move forward (card expiry without waiting)."""

    def __init__(self) -> None:
        self._offset_ms = 0

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.ms() / 1000, tz=UTC)

    def ms(self) -> int:
        return super().ms() + self._offset_ms

    def shift(self, seconds: float) -> None:
        self._offset_ms += int(seconds * 1000)


def make_signal(now: datetime, sid: str = "SIG0001", **over: Any) -> Signal:
    d: dict[str, Any] = {
        "id": sid, "ts": now.isoformat(), "strategy": "gamma_0dte", "symbol": "SPY",
        "instrument": {"type": "OPT", "expiry": date(2026, 11, 20).isoformat(), "strike": 590.0, "right": "C",
                       "multiplier": 100},
        "side": "BUY", "qty": 4, "limit": 2.15,
        "quote": {"bid": 2.10, "ask": 2.20, "ts": now.isoformat()},
        "stop": 1.55, "targets": [3.05, 4.10], "confidence": 71, "horizon": "0dte", "direction": "bullish",
        "triggers": ["gamma flip reclaimed", "vpin 0.62"],
    }
    d.update(over)
    return Signal.model_validate(d)


def verdict(bus: Bus, sig: Signal, **over: Any) -> VerdictEvent:
    fields: dict[str, Any] = {"signal": sig, "decision": "caution", "reasons": [], "reviewed_by": ["rules", "claude"],
                                  "ai": {"status": "ok"}, "concerns": ["spread 6% of mid", "late in the window"],
                                  "summary": "Dealers short gamma above the flip.", "premium_at_risk": 860.0,
                                  "risk_pct": 0.86}
    fields.update(over)
    return bus.make(VerdictEvent, correlation_id=f"corr-{sig.id}", **fields)


def position(bus: Bus, kind: str, corr: str, position_id: str = "pos-1", **over: Any) -> PositionEvent:
    base: dict[str, Any] = {
        "kind": kind, "position_id": position_id, "strategy": "gamma_0dte", "symbol": "SPY", "expiry": "2026-11-20", "strike": 590.0,
        "right": "C", "direction": "bullish", "horizon": "0dte", "qty": 4, "qty_open": 4, "price": 2.15, "entry_price": 2.15,
        "stop": 1.55, "targets": [3.05, 4.1]}
    if kind == "closed":
        base.update(qty=4, qty_open=0, price=3.0, realized_pnl=337.4, reason="target 2")
    base.update(over)
    return bus.make(PositionEvent, correlation_id=corr, **base)


async def read_stream(bus: Bus, name: str) -> list[Event]:
    rows = await bus.redis.xrange(bus.keys.stream(name))
    return [decode(f) for _i, f in rows]


def visible(text: str) -> str:
    return html.unescape(re.sub(r"<[^<>]+>", "", text))


def buttons_of(msg: dict[str, Any]) -> list[str]:
    rows = (msg.get("reply_markup") or {}).get("inline_keyboard") or []
    return [b["callback_data"] for row in rows for b in row if "callback_data" in b]


class Harness:
    """One running bot plus the ApprovalService that opens the cards, both driven through
    their real consumer groups; PTB polls the fake on the test's event loop."""

    def __init__(self, bot: TelegramBotService, approvals: ApprovalService, bus: Bus, fake: FakeTelegram) -> None:
        self.bot = bot
        self.approvals = approvals
        self.bus = bus
        self.fake = fake
        self.bot_consumer = consumer_for(bot)
        self.approval_consumer = consumer_for(approvals)

    async def pump(self) -> int:
        """Let both services handle everything on their streams until quiet."""
        total = 0
        for _ in range(20):
            n = await self.approval_consumer.poll(self.approvals.handle)  # type: ignore[union-attr]
            n += await self.bot_consumer.poll(self.bot.handle)  # type: ignore[union-attr]
            total += n
            if n == 0:
                break
        return total

    async def publish(self, *events: Event) -> None:
        for ev in events:
            await self.bus.publish(ev)
        await self.pump()

    async def open_card(self, sig: Signal, **verdict_over: Any) -> dict[str, Any]:
        """Verdict -> ApprovalService (pending card) -> bot -> card message in the admin chat."""
        await self.publish(verdict(self.bus, sig, **verdict_over))
        return await self.fake.wait_for_sent_async(ADMIN_CHAT, f"<code>{sig.id}</code>", timeout=5)

    async def command(self, text: str, user: int = ADMIN, chat: int = ADMIN_CHAT, after: int | None = None,
                      contains: str | None = None) -> dict[str, Any]:
        n = len(self.fake.sent_messages(chat)) if after is None else after
        self.fake.send_command(user, chat, text)
        return await self.fake.wait_for_sent_async(chat, contains, timeout=5, after=n)

    async def press(self, message: dict[str, Any], data: str, user: int = ADMIN, chat: int = ADMIN_CHAT,
                    check_button: bool = True) -> dict[str, Any]:
        """Press a button and wait for the bot's answer to it."""
        upd = self.fake.press_button(user, chat, message["message_id"], data, check_button=check_button)
        qid = upd["callback_query"]["id"]
        answers = await self.fake.wait_for_async(lambda: self.fake.callback_answers(qid), timeout=5)
        return answers[0]

    async def wait_edit(self, chat: int, message_id: int, contains: str) -> dict[str, Any]:
        def pred() -> dict[str, Any] | None:
            for e in self.fake.edits(chat, message_id):
                body = e.get("text") or e.get("caption") or ""
                if contains in body:
                    return e
            return None

        return await self.fake.wait_for_async(pred, timeout=5)


async def eventually(probe: Callable[[], Awaitable[Any]], expected: Any, timeout: float = 5.0) -> Any:
    """Poll ``await probe()`` until it equals ``expected`` (the bot works on the same loop)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value == expected or asyncio.get_running_loop().time() > deadline:
            assert value == expected
            return value
        await asyncio.sleep(0.02)
