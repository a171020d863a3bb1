"""``python main.py ibkr check``: what an operator runs first against TWS / IB Gateway."""

from __future__ import annotations

import json

import main
from tests.ibkr.conftest import EXPIRIES


def test_ibkr_check_json_has_the_documented_keys(tws, capsys):
    tws.set_position("SPY", EXPIRIES[1], 590.0, "C", 2, 310.0)
    assert main.main(["ibkr", "check", "--port", str(tws.port), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"server_version", "accounts", "net_liquidation", "positions", "open_orders"}
    assert out["accounts"] == ["DU1234567"] and out["server_version"] == 176
    [pos] = out["positions"]
    assert (pos["symbol"], pos["strike"], pos["right"], pos["qty"]) == ("SPY", 590.0, "C", 2)
    assert set(pos) >= {"symbol", "expiry", "strike", "right", "qty", "avg_cost"}


def test_ibkr_check_without_tws_is_one_line_and_exit_2(capsys):
    assert main.main(["ibkr", "check", "--port", "1"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "connection refused" in lines[0] and captured.out == ""

