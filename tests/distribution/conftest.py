"""Fixtures for the distribution tests: real Redis (tests/conftest.py), the local fakes
of Discord / X / Reddit driven through discord.py, tweepy and praw, and a small
harness that feeds events through the service's real consumer and moves the SimClock
from one due time to the next."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import discord
import pytest

from bot.distribution import DistributorService
from core.bus.bus import Bus
from core.config.secrets import Secrets
from tests.distribution._util import CHANNELS, GUILD, Harness
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.reddit_api import FakeReddit
from tests.fakes.x_api import FakeX
from tests.helpers import make_context

for _var in ("NO_PROXY", "no_proxy"):
    _have = [h for h in os.environ.get(_var, "").split(",") if h.strip()]
    for _h in ("127.0.0.1", "localhost"):
        if _h not in _have:
            _have.append(_h)
    os.environ[_var] = ",".join(_have)

@pytest.fixture(scope="session")
def _discord_shared() -> FakeDiscord:
    return FakeDiscord.shared()


@pytest.fixture(scope="session")
def _x_shared() -> FakeX:
    return FakeX.shared()


@pytest.fixture(scope="session")
def _reddit_shared() -> FakeReddit:
    return FakeReddit.shared()


@pytest.fixture
def dfake(_discord_shared: FakeDiscord, monkeypatch: pytest.MonkeyPatch) -> FakeDiscord:
    _discord_shared.reset()
    for tier, cid in CHANNELS.items():
        _discord_shared.add_channel(cid, f"signals-{tier}", GUILD)
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)  # restored after the test
    return _discord_shared


@pytest.fixture
def xfake(_x_shared: FakeX) -> FakeX:
    _x_shared.reset()
    return _x_shared


@pytest.fixture
def rfake(_reddit_shared: FakeReddit) -> FakeReddit:
    _reddit_shared.reset()
    return _reddit_shared


@pytest.fixture
def live_secrets(dfake: FakeDiscord, xfake: FakeX, rfake: FakeReddit) -> Secrets:
    return Secrets(  # type: ignore[call-arg]
        _env_file=None,
        discord_bot_token="fake-bot-token",
        discord_channel_premium=str(CHANNELS["premium"]),
        discord_channel_basic=str(CHANNELS["basic"]),
        discord_channel_free=str(CHANNELS["free"]),
        discord_api_base=dfake.base_url,
        x_consumer_key="ck", x_consumer_secret="cs", x_access_token="at", x_access_token_secret="ats",
        x_api_base=xfake.base_url,
        reddit_client_id="fake-client-id", reddit_client_secret="fake-client-secret",
        reddit_username=rfake.username, reddit_password="fake-password",
        reddit_api_base=rfake.base_url,
    )


@pytest.fixture
async def make_service(bus: Bus, tmp_path) -> AsyncIterator[Callable[..., Any]]:
    """``await make_service(secrets=None, sink="live", **distribution overrides)`` -> Harness."""
    made: list[DistributorService] = []

    async def _make(secrets: Secrets | None = None, sink: str = "live", out_dir: str | None = None,
                    **dist: Any) -> Harness:
        ctx = make_context(bus, secrets=secrets, out_dir=out_dir or str(tmp_path),
                           distribution={"sink": sink, **dist})
        svc = DistributorService(ctx)
        await svc.start()
        made.append(svc)
        return Harness(svc, bus)

    yield _make
    for svc in made:
        await svc.stop()


