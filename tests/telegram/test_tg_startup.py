"""An unreachable or slow Telegram must not hold the process at start (it held every service 15 s):
``start()`` returns at once, the bot connects in the background with retries, the other services
run meanwhile, and messages queued before it is up are delivered once it is."""

from __future__ import annotations

import asyncio
import socket
from datetime import datetime

import pytest

from bot.telegram import TelegramBotService
from core.bus.events import AlertEvent
from core.config.secrets import Secrets
from core.runtime.consumers import consumer_for
from core.runtime.live_runner import LiveRunner
from core.runtime.service import Service
from tests.fakes.telegram_api import DEFAULT_TOKEN
from tests.helpers import make_context, until
from tests.telegram._util import ADMIN, ADMIN_CHAT

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

FAST = {"per_chat_messages_per_s": 50.0, "poll_timeout_s": 1, "backoff_base_s": 0.1, "backoff_max_s": 1.0}
RUNNER = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05, "heartbeat_every_s": 0.05, "poll_block_ms": 20}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once closed


class Ticker(Service):
    name = "ticker"
    interval_s = 0.01

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.ticks = 0

    async def on_timer(self, now: datetime) -> None:
        self.ticks += 1


async def test_slow_telegram_start_returns_at_once_and_connects_later(tbus, tg_secrets, telegram_fake, tmp_path):
    telegram_fake.fail_next("getMe", "slow", delay=3.0)
    bot = TelegramBotService(make_context(tbus, secrets=tg_secrets, out_dir=str(tmp_path), telegram=FAST))
    try:
        await bot.start()
        assert not bot.ready.is_set(), "start() waited for Telegram"
        await tbus.publish(tbus.make(AlertEvent, code="X", severity="WARNING", state="raised",
                                     message="queued before the bot was up"))
        cons = consumer_for(bot)
        assert cons is not None
        await cons.poll(bot.handle)  # queued in the durable outbox meanwhile
        await asyncio.wait_for(bot.ready.wait(), 15)
        await telegram_fake.wait_for_sent_async(ADMIN_CHAT, "queued before the bot was up", timeout=10)
    finally:
        await bot.stop()


async def test_dropped_connections_are_retried_in_the_background(tbus, tg_secrets, telegram_fake, tmp_path):
    telegram_fake.fail_next("getMe", "drop", count=2)
    bot = TelegramBotService(make_context(tbus, secrets=tg_secrets, out_dir=str(tmp_path), telegram=FAST))
    try:
        await bot.start()
        assert not bot.ready.is_set()
        await asyncio.wait_for(bot.ready.wait(), 20)
        assert [r.fault for r in telegram_fake.requests("getMe")][:3] == ["drop", "drop", None]
        telegram_fake.send_command(ADMIN, ADMIN_CHAT, "/help")  # polling works
        await telegram_fake.wait_for_sent_async(ADMIN_CHAT, "/status", timeout=10)
    finally:
        await bot.stop()


async def test_unreachable_telegram_holds_no_other_service(tbus, tmp_path):
    secrets = Secrets(_env_file=None, telegram_bot_token=DEFAULT_TOKEN,  # type: ignore[call-arg]
                      telegram_admin_ids=str(ADMIN), telegram_admin_chat_id=str(ADMIN_CHAT),
                      telegram_api_base=f"http://127.0.0.1:{_closed_port()}")
    ctx = make_context(tbus, secrets=secrets, out_dir=str(tmp_path), telegram=FAST, runner=RUNNER)
    bot, other = TelegramBotService(ctx), Ticker(ctx)
    runner = LiveRunner([bot, other])
    task = asyncio.create_task(runner.run())
    try:
        await until(lambda: other.ticks >= 5 and "telegram" in runner.started, 10, "the other service running")
        assert not bot.ready.is_set() and bot.failure is None  # still trying in the background
    finally:
        runner.request_stop()
        await asyncio.wait_for(task, 15)  # a stop cancels the background connect
