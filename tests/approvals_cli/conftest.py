"""Fixtures of the operator CLI tests: the CLI (``main.main``, in-process) pointed at the test Redis
and at this test's key namespace (``QUANT_REDIS__KEY_PREFIX`` + ``--mode dry-run``), a bus of the
test on the same namespace (the wall clock, as the CLI uses for a non-demo mode), card builders."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

import main
from core.approvals.claims import open_card
from core.bus.bus import Bus
from core.bus.events import Event, decode
from core.bus.ids import IdFactory
from core.bus.keys import Keys
from core.clock.clock import LiveClock
from tests.telegram._util import make_signal

MODE = "dry-run"
USER = "ann"


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_url: str, key_prefix: str) -> str:
    """No outside QUANT_* / REDIS_URL / Telegram secrets; cwd = tmp_path (no .env read)."""
    for name in list(os.environ):
        if name.startswith(("QUANT_", "TELEGRAM_")) or name == "REDIS_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("QUANT_REDIS__URL", redis_url)
    monkeypatch.setenv("QUANT_REDIS__KEY_PREFIX", key_prefix)
    monkeypatch.setenv("USER", USER)
    monkeypatch.chdir(tmp_path)
    return f"{key_prefix}.{MODE}"


@pytest.fixture
async def nsbus(redis_url: str, cli_env: str):
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield Bus(client, Keys(cli_env), LiveClock(), IdFactory(seed=7), source="test")
    async for key in client.scan_iter(match=f"{cli_env}:*", count=1000):
        await client.delete(key)
    await client.aclose()


Cli = Callable[..., Any]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], cli_env: str) -> Cli:
    """``await cli("approve", "X")`` -> (exit code, stdout, stderr). main.main runs its own event loop,
    so it runs in a worker thread."""
    async def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(main.main, [*argv, "--mode", MODE])
        out, err = capsys.readouterr()
        return code, out, err
    return run


async def open_signal(bus: Bus, sid: str, ttl_ms: int = 300_000, qty: int = 4, **payload: Any) -> None:
    sig = make_signal(bus.clock.now(), sid=sid, qty=qty)
    body = {"signal": sig.model_dump(mode="json"), "correlation_id": f"corr-{sid}", "policy": "manual",
            "verdict": "caution", "premium_at_risk": 860.0, "risk_pct": 0.86}
    body.update(payload)
    tx = bus.tx()
    open_card(tx, f"sig:{sid}", "signal", bus.clock.ms() + ttl_ms, body)
    await tx.commit()


async def open_report(bus: Bus, rid: str, ttl_ms: int = 3_600_000) -> None:
    tx = bus.tx()
    open_card(tx, f"rep:{rid}", "report", bus.clock.ms() + ttl_ms,
              {"kind": "close", "path": "close.html", "summary": "Closing report", "paths": {},
               "correlation_id": rid})
    await tx.commit()


async def stream(bus: Bus, name: str) -> list[Event]:
    return [decode(f) for _id, f in await bus.redis.xrange(bus.keys.stream(name))]


def one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]
