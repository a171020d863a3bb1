"""What command and button handlers share: dependencies plus the small actions every
handler needs (reply through the outbox, audit, refuse, answer a button press)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from telegram import CallbackQuery
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError

from bot.telegram.auth import Auth
from bot.telegram.cards import CardStore
from bot.telegram.names import Names
from bot.telegram.outbox import Buttons, Outbox, Outgoing
from bot.telegram.render import Renderer, clip
from bot.telegram.sender import retry_after_s
from core.bus.bus import Bus
from core.bus.events import AuditEvent
from core.bus.keys import Keys
from core.config.model import Settings
from core.ledger.reader import LedgerReader

log = logging.getLogger("quanticity.telegram")

ANSWER_BUDGET_S = 10.0  # Telegram drops an unanswered button press after ~15 s


@dataclass
class BotContext:
    bus: Bus
    settings: Settings
    auth: Auth
    renderer: Renderer
    outbox: Outbox
    cards: CardStore
    names: Names
    kick: Callable[[], None]
    bot_key: str = "bot"  # the bot's id (token head): update ids are only unique per bot
    # /pnl reads the trade ledger (core.ledger.reader); without one it says the ledger is not there
    ledger: LedgerReader = field(default_factory=lambda: LedgerReader(None, disabled="no ledger configured"))

    @property
    def redis(self) -> aioredis.Redis:
        return self.bus.redis

    @property
    def keys(self) -> Keys:
        return self.bus.keys

    def now_ms(self) -> int:
        return self.bus.clock.ms()

    # ------------------------------------------------------------------ once per update
    async def first_time(self, update_id: int) -> bool:
        """False when this update was already handled (Telegram re-delivers after a restart)."""
        key = self.keys.key("tg_update", f"{self.bot_key}:{update_id}")
        ok = await self.redis.set(key, "1", nx=True, ex=7 * 86400)
        return bool(ok)

    # ------------------------------------------------------------------ outbound
    async def send(self, chat_id: int | str, text: str, *, idem: str, buttons: Buttons | None = None,
                   silent: bool = False) -> None:
        await self.outbox.enqueue(Outgoing(idem=idem, chat_id=chat_id, text=text, buttons=buttons, silent=silent),
                                  self.now_ms())
        self.kick()

    async def edit(self, chat_id: int | str, message_id: int, text: str, *, idem: str,
                   buttons: Buttons | None = None) -> None:
        await self.outbox.enqueue(Outgoing(idem=idem, chat_id=chat_id, op="edit", message_id=message_id, text=text,
                                           buttons=buttons), self.now_ms())
        self.kick()

    async def answer(self, query: CallbackQuery, text: str, *, alert: bool = False) -> bool:
        """Answer a button press directly; waits out a 429 (within Telegram's answer window)."""
        waited, attempt = 0.0, 0
        while True:
            try:
                await query.answer(clip(text, 190), show_alert=alert)
                return True
            except RetryAfter as exc:
                wait = retry_after_s(exc)
            except BadRequest as exc:  # too old / already answered: nothing more to do
                log.info("callback answer refused: %s", exc)
                return False
            except NetworkError:
                wait = min(2.0, 0.25 * 2 ** attempt)
            except TelegramError as exc:
                log.warning("callback answer failed: %s", exc)
                return False
            attempt += 1
            if waited + wait > ANSWER_BUDGET_S:
                log.warning("callback answer given up after %.1fs of retries", waited)
                return False
            waited += wait
            await asyncio.sleep(wait)

    # ------------------------------------------------------------------ audit
    def audit_event(self, actor: str, action: str, detail: dict[str, Any]) -> AuditEvent:
        return self.bus.make(AuditEvent, actor=actor, action=action, detail=detail)

    async def audit(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        await self.bus.publish(self.audit_event(actor, action, detail))

    async def refuse(self, user_id: int, chat_id: int | str, what: str, query: CallbackQuery | None = None) -> None:
        """Someone not allowed: a short refusal (at most one reply a minute per user in a chat),
        nothing about the system, and an audit record every time."""
        log.warning("refused user=%s chat=%s: %s", user_id, chat_id, clip(what, 64))
        await self.audit(str(user_id), "refused", {"chat_id": str(chat_id), "what": clip(what, 64)})
        text = self.renderer.reply("refused")
        if query is not None:
            await self.answer(query, text)
            return
        minute = self.now_ms() // 60_000
        await self.send(chat_id, text, idem=f"refused:{chat_id}:{user_id}:{minute}")

    # ------------------------------------------------------------------ confirmations
    async def new_confirmation(self, action: str, user_id: int) -> str:
        nonce = self.bus.new_id()
        await self.redis.set(self.keys.key("tg_confirm", nonce), json.dumps({"action": action, "by": user_id}),
                             ex=self.settings.telegram.confirm_ttl_s)
        return nonce

    async def take_confirmation(self, nonce: str) -> dict[str, Any] | None:
        """The pending confirmation, consumed (a second press finds nothing)."""
        key = self.keys.key("tg_confirm", nonce)
        pipe = self.redis.pipeline(transaction=True)
        pipe.get(key)
        pipe.delete(key)
        raw, _ = await pipe.execute()
        return json.loads(raw) if raw else None
