"""The python-telegram-bot Application: built from the secrets, handlers registered,
started with long polling, stopped cleanly.

``TELEGRAM_API_BASE`` (a self-hosted Bot API server, or the test fake) replaces
``https://api.telegram.org``: requests go to ``<base>/bot<token>/<method>`` and files to
``<base>/file/bot<token>/<path>``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import BotCommand, Update
from telegram.error import InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot.telegram import buttons, commands
from bot.telegram.context import BotContext
from bot.telegram.sender import retry_after_s
from core.config.loader import ConfigError

log = logging.getLogger("quanticity.telegram.app")


def build_application(token: str, api_base: str | None, poll_timeout_s: int) -> Application:
    builder = ApplicationBuilder().token(token).job_queue(None).concurrent_updates(False)
    if api_base:
        base = api_base.rstrip("/")
        builder = builder.base_url(f"{base}/bot").base_file_url(f"{base}/file/bot")
    builder = builder.get_updates_read_timeout(poll_timeout_s + 10)
    return builder.build()


def register_handlers(app: Application, ctx: BotContext) -> None:
    for name, fn in commands.HANDLERS.items():
        app.add_handler(CommandHandler(name, commands.guard(ctx, name, fn)))
    app.add_handler(MessageHandler(filters.COMMAND, commands.guard(ctx, "unknown", None)))
    app.add_handler(CallbackQueryHandler(buttons.handler(ctx)))

    async def on_error(update: object, context: Any) -> None:
        log.error("telegram handler error: %s", context.error, exc_info=context.error)

    app.add_error_handler(on_error)


async def _retrying(what: str, fn: Callable[[], Awaitable[Any]], stopping: Callable[[], bool],
                    max_tries: int | None = None) -> bool:
    """Run ``fn`` until it succeeds (network errors and 429s wait and retry)."""
    delay, tries = 1.0, 0
    while not stopping():
        tries += 1
        try:
            await fn()
            return True
        except InvalidToken as exc:
            raise ConfigError("TELEGRAM_BOT_TOKEN was refused by Telegram (invalid token)") from exc
        except RetryAfter as exc:
            wait = retry_after_s(exc)
        except (NetworkError, TelegramError) as exc:
            wait = delay
            delay = min(30.0, delay * 2)
            log.warning("telegram %s failed (%s); retrying in %.0fs", what, exc, wait)
        if max_tries is not None and tries >= max_tries:
            return False
        await asyncio.sleep(wait)
    return False


async def bring_up(app: Application, poll_timeout_s: int, stopping: Callable[[], bool]) -> bool:
    """initialize (getMe) -> setMyCommands -> start -> start_polling. False if stopped first."""
    if not await _retrying("start-up", app.initialize, stopping):
        return False
    cmds = [BotCommand(name, desc) for name, _usage, desc in commands.COMMANDS]
    if not await _retrying("setMyCommands", lambda: app.bot.set_my_commands(cmds), stopping, max_tries=5):
        log.warning("setMyCommands did not succeed; the command menu may be stale")
    if stopping():
        return False
    await app.start()

    def polling_error(exc: TelegramError) -> None:
        log.warning("telegram polling error: %s", exc)

    if app.updater is None:
        raise RuntimeError("the telegram Application was built without an updater")
    # bootstrap_retries=-1: PTB retries its deleteWebhook bootstrap every second until it works
    # (this runs in the background and a stop cancels it); the polling loop retries on its own
    await app.updater.start_polling(poll_interval=0.0, timeout=poll_timeout_s, drop_pending_updates=False,
                                    allowed_updates=[Update.MESSAGE, Update.CALLBACK_QUERY],
                                    error_callback=polling_error, bootstrap_retries=-1)
    return True


async def shut_down(app: Application) -> None:
    try:
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
    finally:
        await app.shutdown()
