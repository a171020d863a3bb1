"""The mode decides the parts: a configuration that contradicts its mode is refused at start, and
each mode keeps its own Redis keys."""

from __future__ import annotations

import itertools
import uuid

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

import main
from core.config.loader import load_settings
from core.config.model import Settings

ALLOWED = {
    ("demo", "simulator", "paper", "outbox"),
    ("dry-run", "ibkr", "paper", "outbox"),
    ("live", "ibkr", "ibkr", "live"),
    ("live", "ibkr", "ibkr", "outbox"),
}


def _settings(mode: str, source: str, broker: str, sink: str) -> Settings:
    return Settings.model_validate({"mode": mode, "market": {"source": source}, "execution": {"broker": broker},
                                    "distribution": {"sink": sink}})


@pytest.mark.parametrize("combo", list(itertools.product(
    ["demo", "dry-run", "live"], ["simulator", "ibkr", "vendor"], ["paper", "ibkr"], ["outbox", "live"])))
def test_mode_table(combo):
    if combo in ALLOWED:
        assert _settings(*combo).mode.value == combo[0]
    else:
        with pytest.raises(ValidationError, match="contradicts"):
            _settings(*combo)


def test_live_money_never_on_simulated_data_and_simulated_fills_never_to_a_paying_channel():
    with pytest.raises(ValidationError, match=r"market\.source: simulator \(needs ibkr\)"):
        _settings("live", "simulator", "ibkr", "live")
    with pytest.raises(ValidationError, match=r"distribution\.sink: live \(needs outbox\)"):
        _settings("dry-run", "ibkr", "paper", "live")
    with pytest.raises(ValidationError, match=r"execution\.broker: paper \(needs ibkr\)"):
        _settings("live", "ibkr", "paper", "live")


def test_run_live_on_the_default_config_is_refused_with_one_line(capsys):
    assert main.main(["run", "--mode", "live"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "market.source: simulator (needs ibkr)" in err[0] and "execution.broker: paper (needs ibkr)" in err[0]


def test_run_mode_overrides_the_file_and_env_layers(tmp_path):
    cfg = tmp_path / "live.yaml"
    cfg.write_text("market: {source: ibkr}\nexecution: {broker: ibkr}\ndistribution: {sink: live}\n")
    s = load_settings(cfg, environ={}, mode="live")
    assert (s.mode.value, s.key_namespace) == ("live", "q.live")
    with pytest.raises(Exception, match="contradicts"):
        load_settings(cfg, environ={}, mode="demo")


def test_each_mode_has_its_own_key_namespace():
    spaces = {_settings(*c).key_namespace for c in ALLOWED}
    assert spaces == {"q.demo", "q.dry-run", "q.live"}


async def test_cli_halt_writes_only_the_named_modes_state(monkeypatch, capsys):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/15")
    monkeypatch.setenv("QUANT_REDIS__KEY_PREFIX", prefix)
    client = aioredis.Redis.from_url("redis://127.0.0.1:6379/15", decode_responses=True)
    try:
        import asyncio

        rc = await asyncio.to_thread(main.main, ["halt", "--reason", "drill", "--mode", "live"])
        assert rc == 0
        assert await client.hget(f"{prefix}.live:halt", "halted") == "1"
        assert await client.exists(f"{prefix}.demo:halt") == 0
        assert await client.exists(f"{prefix}.dry-run:halt") == 0
    finally:
        async for key in client.scan_iter(match=f"{prefix}.*"):
            await client.delete(key)
        await client.aclose()
