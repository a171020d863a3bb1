"""``python main.py analytics CHAIN.json`` computes with the same configuration as the
AnalyticsService: rate and dividend yield, flip grid levels, flip range and the minimum time to
expiry. One 0DTE chain three minutes before the close (where the time floor matters) and one
config that moves every one of those settings away from its default: CLI and service give the
same numbers, and they differ from the defaults' numbers (so a CLI that ignored a setting fails)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

import main
from core.analytics.report import chain_from_rows
from core.analytics.service import AnalyticsService
from core.bus.events import AnalyticsEvent, ChainEvent, decode
from core.config import load_settings
from core.market.chain_codec import encode_chain
from tests.helpers import make_context

ASOF = datetime(2026, 11, 20, 20, 57, tzinfo=UTC)  # 15:57 New York, expiry day
OVERLAY = """
market:
  rate: 0.031
  dividend_yield: 0.012
analytics:
  flip_grid_levels: 121
  flip_range_pct: 6.0
  min_minutes_to_expiry: 45.0
"""


def _chain_json() -> dict:
    rows = []
    for strike in (580.0, 582.5, 585.0, 587.5, 590.0, 592.5, 595.0, 597.5, 600.0):
        # calls above spot, puts below: the gamma flip sits near spot, inside the narrow grid
        for right, oi in (("C", 3000 if strike >= 590 else 300), ("P", 2600 if strike <= 587.5 else 250)):
            rows.append({"expiry": "2026-11-20", "strike": strike, "right": right, "bid": 1.0, "ask": 1.1,
                         "iv": 0.18 + abs(strike - 589.0) / 400.0, "open_interest": oi})
            rows.append({"expiry": "2026-11-27", "strike": strike, "right": right, "bid": 3.0, "ask": 3.2,
                         "iv": 0.16, "open_interest": oi // 2})
    return {"symbol": "SPY", "spot": 589.3, "asof": ASOF.isoformat(), "contracts": rows}


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    for name in list(os.environ):
        if name.startswith("QUANT_"):
            monkeypatch.delenv(name)
    chain = tmp_path / "chain.json"
    chain.write_text(json.dumps(_chain_json()))
    overlay = tmp_path / "analytics.yaml"
    overlay.write_text(OVERLAY)
    return chain, overlay


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main.main(argv) == 0
    return json.loads(capsys.readouterr().out)


async def _service(bus, overlay: Path) -> AnalyticsEvent:
    settings = load_settings(overlay)
    bus.clock.set_ms(int(ASOF.timestamp() * 1000))
    obj = _chain_json()
    chain, bad = chain_from_rows("SPY", obj["spot"], ASOF, obj["contracts"])
    assert bad == 0
    key = bus.keys.snapshot("chain", "SPY")
    await bus.redis.set(key, encode_chain(chain))
    svc = AnalyticsService(make_context(bus, settings=settings))
    ev = bus.make(ChainEvent, symbol="SPY", spot=obj["spot"], asof=bus.clock.ms(), snapshot_key=key,
                  contracts=len(chain))
    tx = bus.tx()
    await svc.handle(ev, tx)
    await tx.commit()
    out = [decode(f) for _id, f in await bus.redis.xrange(bus.keys.stream("analytics"))]
    [an] = [e for e in out if isinstance(e, AnalyticsEvent)]
    return an


def _same(cli: dict, an: AnalyticsEvent) -> None:
    assert an.gex_total == pytest.approx(cli["gex_total"], abs=0.006)
    assert an.dex_total == pytest.approx(cli["dex_total"], abs=0.006)
    assert (an.call_wall, an.put_wall) == (cli["call_wall"], cli["put_wall"])
    assert cli["zero_gamma"] is not None and an.zero_gamma == pytest.approx(cli["zero_gamma"], abs=1e-4)
    assert an.max_pain == cli["max_pain"][min(cli["max_pain"])]
    assert an.contracts_used == cli["contracts_used"]
    assert set(an.gex_by_strike) == set(cli["gex_by_strike"])
    for k, v in cli["gex_by_strike"].items():
        assert an.gex_by_strike[k] == pytest.approx(v, abs=0.006), k


async def test_cli_and_service_give_the_same_numbers_for_one_config(bus, files, capsys) -> None:
    chain, overlay = files
    cli = _cli(["analytics", str(chain), "--config", str(overlay)], capsys)
    _same(cli, await _service(bus, overlay))

    default = _cli(["analytics", str(chain)], capsys)  # the config must matter for this chain
    assert default["gex_total"] != pytest.approx(cli["gex_total"], rel=1e-3)
    assert default["zero_gamma"] != pytest.approx(cli["zero_gamma"], abs=1e-3)


@pytest.mark.parametrize("setting,value", [("flip_range_pct", 6.0), ("min_minutes_to_expiry", 45.0),
                                           ("flip_grid_levels", 121)])
def test_each_analytics_setting_reaches_the_cli(files, capsys, tmp_path: Path, setting: str, value: float) -> None:
    """Each setting alone changes the CLI's answer for this chain (none of them is ignored)."""
    chain, _ = files
    one = tmp_path / f"{setting}.yaml"
    one.write_text(f"analytics:\n  {setting}: {value}\n")
    base = _cli(["analytics", str(chain)], capsys)
    changed = _cli(["analytics", str(chain), "--config", str(one)], capsys)
    assert (changed["zero_gamma"], changed["gex_total"]) != (base["zero_gamma"], base["gex_total"]), setting
