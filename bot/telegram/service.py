"""TelegramBotService: the admin's phone interface to the desk.

Consumes ``approvals``, ``alerts``, ``positions``, ``reports``, ``control`` and ``audit`` (only the
execution service's ``order_refused``: an approved entry refused at placement edits its card)
(consumer group ``telegram``) and turns them into messages through a durable outbox; runs a
python-telegram-bot Application with long polling for commands and button presses. It
talks to the rest of the system only through Redis, so it runs as its own process
(``python main.py run --services telegram``) or beside the others.

Redis it owns (names via ``core.bus.keys``):

- ``z:telegram_outbox`` + ``h:telegram_outbox``  outbound queue (due time; payloads)
- ``h:telegram_chat_block``                      per-chat "not before" after a 429 / error
- ``k:tg_seq:outbox``                            queue sequence counter
- ``k:tg_sent:<idem>``                           delivered markers (idempotency, TTL)
- ``k:dead_letter:telegram``                     stream of messages that could not be sent
- ``k:tg_card:<item>`` / ``k:tg_card_corr:<id>`` where each approval card was posted
- ``k:tg_confirm:<nonce>``                       pending /flatten and /resume confirmations
- ``k:tg_update:<bot id>:<update id>``         updates already handled
- ``h:telegram_cb``                              long callback arguments by token
- ``h:telegram_users``                           admin id -> @username, for "decided by"

Reads the trade ledger for /pnl (``core.ledger.reader``, via ``store_for(ctx)``; opened on the first
/pnl, never created or migrated here; unreachable -> /pnl says so in one line).

Shared state it writes: ``h:runtime`` field ``approval_policy`` (/mode), ``h:strategies``
(/strategies), the halt hash (``core.control.halt``), approval claims
(``core.approvals.decide``). Events it emits: ControlEvent (cancel_entries, flatten, close,
report, set_policy, strategy, halt/resume via the halt module), AuditEvent (every admin
action and every refusal).
"""

from __future__ import annotations

import asyncio
import contextlib

from telegram.ext import Application

from bot.telegram.app import bring_up, build_application, register_handlers, shut_down
from bot.telegram.auth import Auth
from bot.telegram.cards import CardStore
from bot.telegram.context import BotContext
from bot.telegram.names import Names
from bot.telegram.notify import Notifier
from bot.telegram.outbox import Outbox
from bot.telegram.render import Renderer
from bot.telegram.sender import Sender
from core.bus.bus import Tx
from core.bus.events import (
    AlertEvent,
    ApprovalEvent,
    AuditEvent,
    ControlEvent,
    Event,
    PositionEvent,
    ReportEvent,
)
from core.config.loader import ConfigError
from core.ledger.reader import LedgerReader
from core.runtime.service import Context, Service


class TelegramBotService(Service):
    name = "telegram"
    streams = ("approvals", "alerts", "positions", "reports", "control", "audit")

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        tg = self.settings.telegram
        self.auth = Auth.from_secrets(ctx.secrets)
        self.renderer = Renderer()
        self.outbox = Outbox(self.redis, self.keys, tg.max_message_chars)
        self.cards = CardStore(self.redis, self.keys)
        self.names = Names(self.redis, self.keys)
        self.sender = Sender(self.bus, self.outbox, self.cards, self.clock, tg)
        self.notifier = Notifier(self.bus, self.settings, self.auth, self.renderer, self.outbox, self.cards,
                                 self.names, self.name)
        token = ctx.secrets.telegram_bot_token
        bot_key = token.get_secret_value().split(":", 1)[0] if token else "bot"  # the public bot id only
        self.bot_ctx = BotContext(self.bus, self.settings, self.auth, self.renderer, self.outbox, self.cards,
                                  self.names, self.sender.kick, bot_key=bot_key if bot_key.isdigit() else "bot",
                                  ledger=LedgerReader.for_context(ctx))  # /pnl; opened on first use
        self.app: Application | None = None
        self.ready = asyncio.Event()
        self._stopping = False
        self._boot: asyncio.Task[bool] | None = None
        self.failure: str | None = None  # why the background start-up gave up (invalid token ...)
        self._pump: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        secrets = self.ctx.secrets
        token = secrets.telegram_bot_token.get_secret_value() if secrets.telegram_bot_token else ""
        if not token:
            raise ConfigError("the telegram service needs TELEGRAM_BOT_TOKEN (from @BotFather)")
        if not self.auth.admin_ids:
            self.log.warning("TELEGRAM_ADMIN_IDS is empty: nobody can use the bot")
        if self.auth.admin_chat is None:
            self.log.warning("TELEGRAM_ADMIN_CHAT_ID is not set: cards and alerts go to the first admin's chat")
        self._stopping = False
        self.ready.clear()
        self.app = build_application(token, secrets.telegram_api_base, self.settings.telegram.poll_timeout_s)
        register_handlers(self.app, self.bot_ctx)
        self._pump = asyncio.create_task(self.sender.run(self.ready), name="telegram-outbox")
        # Connecting happens in the background and start() returns at once: an unreachable or slow
        # Telegram must not hold the other services of this process (it held them 15 s). Until the
        # bot is up, messages wait in the durable outbox; the sender starts when ``ready`` is set.
        self.failure = None
        self._boot = asyncio.create_task(self._bring_up(self.app), name="telegram-start")
        self.log.info("telegram connecting in the background (messages are queued until it is up)")

    async def _bring_up(self, app: Application) -> bool:
        """getMe (retried with backoff, 1 s doubling to 30 s, each try bounded by PTB's own
        connect/read timeouts) -> setMyCommands -> polling (PTB retries its bootstrap and its
        polling loop). A token Telegram refuses cannot be fixed by retrying: it is logged as an
        error and kept in ``failure``; the outbox keeps every message for after the fix."""
        try:
            ok = await bring_up(app, self.settings.telegram.poll_timeout_s, lambda: self._stopping)
        except ConfigError as exc:
            self.failure = str(exc)
            self.log.error("%s: the Telegram bot is NOT running; messages stay queued until it is fixed "
                           "and the service restarted", exc)
            return False
        except Exception as exc:
            self.failure = f"{type(exc).__name__}: {exc}"
            self.log.exception("telegram start-up failed; messages stay queued until the service restarts")
            return False
        if ok:
            self.sender.bot = app.bot
            self.ready.set()
            self.log.info("telegram bot @%s polling; admins=%d", app.bot.username, len(self.auth.admin_ids))
        return ok

    async def stop(self) -> None:
        self._stopping = True
        self.sender.stop()
        if self._boot is not None and not self._boot.done():
            self._boot.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._boot
        if self.app is not None:
            try:
                await shut_down(self.app)
            except Exception:
                self.log.exception("telegram application shutdown failed")
        if self._pump is not None:
            self.ready.set()  # let a pump still waiting for start-up see the stop flag
            try:
                await asyncio.wait_for(self._pump, timeout=10)
            except (TimeoutError, asyncio.CancelledError):
                self._pump.cancel()
        self.app = None
        self.bot_ctx.ledger.close()

    # ------------------------------------------------------------------ events
    async def handle(self, event: Event, tx: Tx) -> None:
        if isinstance(event, ApprovalEvent):
            await self.notifier.approval(event, tx)
        elif isinstance(event, AlertEvent):
            await self.notifier.alert(event, tx)
        elif isinstance(event, PositionEvent):
            await self.notifier.position(event, tx)
        elif isinstance(event, ReportEvent):
            await self.notifier.report(event, tx)
        elif isinstance(event, ControlEvent):
            await self.notifier.control(event, tx)
        elif isinstance(event, AuditEvent) and event.actor == "execution" and event.action == "order_refused":
            await self.notifier.order_refused(event, tx)
        else:
            return
        tx.after_commit.append(self.sender.kick)
