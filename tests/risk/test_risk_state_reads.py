"""load_risk_state reads the whole risk view in one round trip and agrees with the single readers."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from core.control.halt import clear_halt, is_halted, set_halt
from core.state.account import (
    data_ages,
    disabled_strategies,
    load_risk_state,
    open_positions,
    read_account,
)
from tests.helpers import make_context
from tests.redis_count import count_redis

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


async def _seed(redis, keys) -> None:
    await redis.hset(keys.hash("account"), mapping={"account_value": "100000", "day": "2026-11-20",
                                                    "realized_today": "-250", "unrealized": "120",
                                                    "peak_equity": "100400", "premium_open": "860"})
    pos = {"symbol": "SPY", "strategy": "gamma_0dte", "right": "C", "qty_open": 2, "avg_entry": 2.15,
           "multiplier": 100, "expiry": "2026-11-20", "strike": 590.0}
    await redis.hset(keys.hash("positions"), mapping={"p1": json.dumps(pos), "p2": "not json",
                                                      "p3": json.dumps({**pos, "qty_open": 0})})
    await redis.set(keys.snapshot("quote", "SPY"), json.dumps({"quote_ts": int(NOW.timestamp() * 1000) - 4000}))
    await redis.hset(keys.hash("strategies"), mapping={"gamma_0dte": "disabled", "moc_imbalance": "enabled"})


async def test_one_round_trip_same_view_halted_or_not(bus, redis_client, keys) -> None:
    settings = make_context(bus).settings
    await _seed(redis_client, keys)
    for halt in (False, True, False):
        if halt:
            await set_halt(bus, "test", by="admin")
        else:
            await clear_halt(bus, by="admin")
        with count_redis() as seen:
            state = await load_risk_state(redis_client, keys, settings, NOW, symbols=["SPY", "QQQ"])
        assert seen.round_trips == 1  # before: 5 (account, positions, quotes, halt, switches)
        acct = await read_account(redis_client, keys, settings, NOW)
        assert state.halted is halt is await is_halted(redis_client, keys)
        assert state.account_value == acct.account_value and state.daily_pnl == acct.daily_pnl
        assert state.buying_power == max(0.0, acct.account_value + acct.realized_today - acct.premium_open)
        assert [p.symbol for p in state.open_positions] == [p["symbol"] for p in
                                                            await open_positions(redis_client, keys)] == ["SPY"]
        assert state.disabled_strategies == await disabled_strategies(redis_client, keys, settings)
        ages = await data_ages(redis_client, keys, ["SPY", "QQQ"], NOW)
        assert state.data_age_s == {"SPY": ages["SPY"], "QQQ": 1e9} and ages["SPY"] == 4.0


async def test_no_symbols_no_quote_read(bus, redis_client, keys) -> None:
    settings = make_context(bus).settings
    with count_redis() as seen:
        state = await load_risk_state(redis_client, keys, settings, NOW, symbols=[])
    assert seen.commands["mget"] == 0 and state.data_age_s == {} and state.halted is False
