"""``main.py pending``: what waits for a decision, signals and reports, soonest expiry first."""

from __future__ import annotations

import json
from datetime import datetime

from core.approvals.claims import open_card
from tests.approvals_cli.conftest import open_report, open_signal


async def test_pending_json_lists_a_signal_and_a_report_not_an_expired_card(nsbus, cli) -> None:
    now = nsbus.clock.ms()
    await open_signal(nsbus, "SIGP1", ttl_ms=120_000, qty=6)
    await open_report(nsbus, "rep-close-1")
    await open_signal(nsbus, "SIGOLD", ttl_ms=-1_000)  # past its expiry, not swept yet
    code, out, err = await cli("pending", "--json")
    assert code == 0, err
    items = json.loads(out)
    assert [(i["id"], i["kind"]) for i in items] == [("SIGP1", "signal"), ("rep-close-1", "report")]
    sig, rep = items
    for item in items:
        at = datetime.fromisoformat(item["expires_at"])
        assert at.utcoffset() is not None
    assert abs(datetime.fromisoformat(sig["expires_at"]).timestamp() * 1000 - (now + 120_000)) < 1_000
    assert (sig["contract"], sig["qty"], sig["limit"], sig["premium_at_risk"], sig["verdict"], sig["strategy"]) == (
        "SPY 2026-11-20 590C", 6, 2.15, 860.0, "caution", "gamma_0dte")
    assert sig["side"] == "BUY" and sig["occ"] == "SPY   261120C00590000"
    assert (rep["report"], rep["summary"]) == ("close", "Closing report")


async def test_pending_table_and_an_empty_list(nsbus, cli) -> None:
    code, out, _ = await cli("pending")
    assert code == 0 and out.strip() == "nothing waiting for a decision"
    code, out, _ = await cli("pending", "--json")
    assert code == 0 and json.loads(out) == []
    await open_signal(nsbus, "SIGT1")
    await open_report(nsbus, "rep-t")
    code, out, _ = await cli("pending")
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 2
    assert lines[0].startswith("signal SIGT1") and "BUY 4 x SPY 2026-11-20 590C @ 2.15" in lines[0]
    assert "caution" in lines[0] and "gamma_0dte" in lines[0] and "$860" in lines[0]
    assert lines[1].startswith("report rep-t") and "close report" in lines[1]


async def test_a_decided_card_is_not_listed_and_an_invalid_one_is_flagged(nsbus, cli) -> None:
    await open_signal(nsbus, "SIGD1")
    tx = nsbus.tx()
    open_card(tx, "sig:SIGBAD", "signal", nsbus.clock.ms() + 60_000, {"signal": {"id": "SIGBAD", "qty": -5}})
    await tx.commit()
    code, _, err = await cli("reject", "SIGD1")
    assert code == 0, err
    code, out, _ = await cli("pending", "--json")
    items = json.loads(out)
    assert [i["id"] for i in items] == ["SIGBAD"] and items[0]["invalid"] and items[0]["qty"] is None
