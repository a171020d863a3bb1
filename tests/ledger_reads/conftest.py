"""Fixtures of the ledger-read tests: the real Redis (tests/conftest.py), a ledger in an SQLite file
under tmp_path or in a fresh PostgreSQL database (created as superuser ``postgres`` on
127.0.0.1:5432 with a uuid name, dropped afterwards), and the Telegram bot against the Bot API
fake (tests/fakes/telegram_api.py) with its ledger URL set.

No ``__init__.py`` here on purpose (like tests/telegram and tests/overseer): helpers live in
``lr_helpers.py``, importable because pytest puts this folder on sys.path."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

for _var in ("NO_PROXY", "no_proxy"):
    _have = [h for h in os.environ.get(_var, "").split(",") if h.strip()]
    for _h in ("127.0.0.1", "localhost"):
        if _h not in _have:
            _have.append(_h)
    os.environ[_var] = ",".join(_have)

from bot.telegram import TelegramBotService
from core.approvals.service import ApprovalService
from core.bus.bus import Bus
from core.bus.ids import IdFactory
from core.config.secrets import Secrets
from tests.fakes import telegram_api
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegram
from tests.helpers import make_context
from tests.telegram._util import ADMIN, ADMIN2, ADMIN_CHAT, Harness, ShiftClock

PG_ADMIN = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

telegram_fake_session = telegram_api.telegram_fake_session
telegram_fake = telegram_api.telegram_fake


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.sqlite'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test (dropped afterwards, open connections included)."""
    import psycopg

    name = f"lr_{uuid.uuid4().hex}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:  # pragma: no cover - the CI machine has PostgreSQL
        pytest.fail(f"tests need the real PostgreSQL at {PG_ADMIN}: {exc}")
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest) -> str:
    """The same test on both databases the ledger supports."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


# ------------------------------------------------------------------ the Telegram bot
@pytest.fixture
def clock() -> ShiftClock:
    return ShiftClock()


@pytest.fixture
async def tbus(redis_client, keys, clock) -> Bus:
    """A bus on a wall-speed clock (PTB polling is real time)."""
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
                   tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await make_bot(ledger_url, **settings sections)`` -> a started Harness (stopped at teardown)."""
    running: list[TelegramBotService] = []

    async def _make(ledger_url: str, **sections: Any) -> Harness:
        ctx = make_context(tbus, secrets=tg_secrets, out_dir=str(tmp_path), telegram=TEST_TELEGRAM, **sections)
        ctx.extras["ledger_url"] = ledger_url
        bot = TelegramBotService(ctx)
        await bot.start()
        running.append(bot)
        await asyncio.wait_for(bot.ready.wait(), 15)
        return Harness(bot, ApprovalService(ctx), tbus, telegram_fake)

    yield _make
    for bot in running:
        await bot.stop()
