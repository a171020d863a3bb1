"""Fixtures of the Telegram bot tests: the real Redis (tests/conftest.py), the Bot API fake
(tests/fakes/telegram_api.py) driven by the real python-telegram-bot, and a factory that
starts the bot service (PTB polling the fake) with an ApprovalService beside it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

# No __init__.py in this folder on purpose: a package named "telegram" would shadow
# python-telegram-bot. Make the repository root importable for ``tests.*`` instead.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from bot.telegram import TelegramBotService
from core.approvals.service import ApprovalService
from core.bus.bus import Bus
from core.bus.ids import IdFactory
from core.config.secrets import Secrets
from tests.fakes import telegram_api
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegram
from tests.helpers import make_context
from tests.telegram._util import ADMIN, ADMIN2, ADMIN_CHAT, Harness, ShiftClock

for _var in ("NO_PROXY", "no_proxy"):
    _have = [h for h in os.environ.get(_var, "").split(",") if h.strip()]
    for _h in ("127.0.0.1", "localhost"):
        if _h not in _have:
            _have.append(_h)
    os.environ[_var] = ",".join(_have)

telegram_fake_session = telegram_api.telegram_fake_session
telegram_fake = telegram_api.telegram_fake


@pytest.fixture
def clock() -> ShiftClock:
    return ShiftClock()


@pytest.fixture
async def tbus(redis_client, keys, clock) -> Bus:
    """A bus on a wall-speed clock (PTB polling and Telegram's retry_after are real time)."""
    return Bus(redis_client, keys, clock, IdFactory())


@pytest.fixture
def tg_secrets(telegram_fake: FakeTelegram) -> Secrets:
    return Secrets(_env_file=None, telegram_bot_token=DEFAULT_TOKEN,  # type: ignore[call-arg]
                   telegram_admin_ids=f"{ADMIN},{ADMIN2}", telegram_admin_chat_id=str(ADMIN_CHAT),
                   telegram_api_base=telegram_fake.base_url)


TEST_TELEGRAM = {"per_chat_messages_per_s": 50.0, "poll_timeout_s": 1, "backoff_base_s": 0.1,
                 "backoff_max_s": 1.0}


@pytest.fixture
async def make_bot(tbus: Bus, tg_secrets: Secrets, telegram_fake: FakeTelegram,
                   tmp_path) -> AsyncIterator[Callable[..., Any]]:
    """``await make_bot(sections={...}, **telegram overrides)`` -> a started Harness (stopped at teardown)."""
    running: list[TelegramBotService] = []

    async def _make(secrets: Secrets | None = None, sections: dict[str, Any] | None = None,
                    **telegram: Any) -> Harness:
        ctx = make_context(tbus, secrets=secrets or tg_secrets, out_dir=str(tmp_path),
                           telegram={**TEST_TELEGRAM, **telegram}, **(sections or {}))
        bot = TelegramBotService(ctx)
        await bot.start()  # returns at once; the bot connects in the background
        running.append(bot)
        await asyncio.wait_for(bot.ready.wait(), 15)
        return Harness(bot, ApprovalService(ctx), tbus, telegram_fake)

    yield _make
    for bot in running:
        await bot.stop()
