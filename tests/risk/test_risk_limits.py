"""RiskLimits config handling and daily_loss_level."""

from __future__ import annotations

import math
from datetime import time

import pytest

from core.risk import RiskLimits, RiskState, daily_loss_level


def test_defaults() -> None:
    lim = RiskLimits()
    assert lim.risk_per_trade_pct == {"0dte": 2.0, "1dte": 3.0, "swing": 5.0}
    assert (lim.daily_loss_warn_pct, lim.daily_loss_halt_pct) == (4.0, 6.0)
    assert (lim.max_open_positions, lim.max_same_direction) == (6, 3)
    assert lim.max_spread_pct_of_mid == 10.0
    assert (lim.max_quote_age_s, lim.max_data_age_s) == (15.0, 60.0)
    assert lim.no_new_0dte_after == time(15, 30)
    assert lim.strategy_windows["gamma_0dte"] == (time(9, 45), time(15, 0))
    assert lim.strategy_windows["overnight_1dte"] == (time(15, 0), time(15, 45))
    assert lim.strategy_windows["moc_imbalance"] == (time(15, 30), time(15, 50))
    assert lim.strategy_windows["directional_swing"] == (time(9, 45), time(15, 45))
    assert lim.cap_pct(None) == 2.0 and lim.cap_pct("swing") == 5.0 and lim.cap_pct("weird") == 2.0


def test_from_config_merges_and_parses() -> None:
    lim = RiskLimits.from_config({
        "risk_per_trade_pct": {"swing": 4},
        "max_open_positions": 4,
        "daily_loss_halt_pct": "8",
        "no_new_0dte_after": "15:15",
        "strategy_windows": {"new_strat": ["10:00", "11:30"]},
    })
    assert lim.risk_per_trade_pct == {"0dte": 2.0, "1dte": 3.0, "swing": 4.0}
    assert lim.max_open_positions == 4 and lim.daily_loss_halt_pct == 8.0
    assert lim.no_new_0dte_after == time(15, 15)
    assert lim.strategy_windows["new_strat"] == (time(10, 0), time(11, 30))
    assert "gamma_0dte" in lim.strategy_windows
    assert RiskLimits.from_config(None) == RiskLimits()


@pytest.mark.parametrize("cfg", [
    {"no_such_limit": 1},
    {"max_open_positions": 2.5},
    {"max_open_positions": -1},
    {"daily_loss_halt_pct": math.nan},
    {"daily_loss_warn_pct": 7.0},          # above halt
    {"max_spread_pct_of_mid": 0},
    {"risk_per_trade_pct": {"swing": -1}},
    {"risk_per_trade_pct": {"swing": math.inf}},
    {"strategy_windows": {"x": "15:00-10:00"}},
    {"strategy_windows": {"x": "nonsense"}},
    {"no_new_0dte_after": "25:00"},
])
def test_bad_config_raises(cfg: dict) -> None:
    with pytest.raises((ValueError, TypeError)):
        RiskLimits.from_config(cfg)


def test_limits_are_not_aliased_to_caller_dicts() -> None:
    caps = {"0dte": 1.0, "1dte": 1.0, "swing": 1.0}
    lim = RiskLimits(risk_per_trade_pct=caps)
    caps["swing"] = 50.0
    assert lim.risk_per_trade_pct["swing"] == 1.0


@pytest.mark.parametrize(("pnl", "level"), [
    (0.0, "ok"), (500.0, "ok"), (-3999.99, "ok"), (-4000.0, "warning"), (-5999.99, "warning"),
    (-6000.0, "halt"), (-50_000.0, "halt"), (math.nan, "halt"), (-math.inf, "halt"),
])
def test_daily_loss_level(pnl: float, level: str) -> None:
    assert daily_loss_level(RiskState(daily_pnl=pnl), RiskLimits()) == level


def test_daily_loss_level_scales_with_account_and_limits() -> None:
    st = RiskState(account_value=50_000, daily_pnl=-2_000)
    assert daily_loss_level(st) == "warning"
    assert daily_loss_level(st, RiskLimits(daily_loss_warn_pct=5, daily_loss_halt_pct=10)) == "ok"
    assert daily_loss_level(RiskState(account_value=0.0)) == "halt"
    assert daily_loss_level({"daily_pnl": -7000}) == "halt"
    assert daily_loss_level({"daily_pnl": "a lot"}) == "halt"
    assert daily_loss_level(None) == "ok"


def test_from_config_ignores_account_value_and_reads_strategy_windows() -> None:
    lim = RiskLimits.from_config(
        {"account_value": 250_000, "max_same_direction": 2},
        strategies={"gamma_0dte": {"enabled": True, "window": ["10:00", "14:00"]},
                    "new_one": {"window": ("09:50", "10:10")}},
    )
    assert lim.max_same_direction == 2
    assert lim.strategy_windows["gamma_0dte"] == (time(10, 0), time(14, 0))
    assert lim.strategy_windows["new_one"] == (time(9, 50), time(10, 10))
    assert lim.strategy_windows["moc_imbalance"] == (time(15, 30), time(15, 50))


def test_from_settings_with_the_app_settings_model() -> None:
    model = pytest.importorskip("core.config.model")
    settings = model.Settings()
    lim = RiskLimits.from_settings(settings)
    assert lim.risk_per_trade_pct == {"0dte": 2.0, "1dte": 3.0, "swing": 5.0}
    assert lim.max_open_positions == settings.risk.max_open_positions
    assert lim.no_new_0dte_after == settings.risk.no_new_0dte_after
    for name, sc in settings.strategies.items():
        assert lim.strategy_windows[name] == tuple(sc.window)
