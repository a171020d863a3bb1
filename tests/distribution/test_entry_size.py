"""The closed post's return % is on the WHOLE position (core.pnl.return_pct): an entry filled in
two parts counts both parts' contracts, so the % is the same one the report and the ledger show."""

from __future__ import annotations

import json

from core.format.numbers import signed_pct
from core.pnl import return_pct
from tests.distribution._util import position


async def test_a_two_fill_entry_counts_every_contract(make_service, bus, tmp_path) -> None:
    h = await make_service(sink="outbox", out_dir=str(tmp_path))
    # 2 + 1 contracts at 2.15 (commissions 1.30 + 0.65), all 3 sold at 3.60 (1.95): +431.10
    await h.publish(position(bus, "entry", qty=2, qty_open=2, realized_pnl=-1.3))
    await h.publish(position(bus, "entry", qty=1, qty_open=3, realized_pnl=-1.95))
    await h.publish(position(bus, "closed", qty=3, qty_open=0, price=3.6, realized_pnl=431.1))
    await h.advance(400)
    posts = {(m["channel"], m["tier"]): m["text"] for m in map(json.loads, (tmp_path / "outbox.jsonl").read_text()
                                                                  .splitlines()) if m["event"] == "closed"}
    whole = return_pct(431.1, 2.15, 3)  # +66.84 %
    assert whole is not None and round(whole, 1) == 66.8
    assert f"Result: {signed_pct(whole, 1)}" in posts[("discord", "premium")], posts
    assert signed_pct(whole, 0) in posts[("discord", "basic")] and signed_pct(whole, 0) in posts[("x", "free")]
    assert signed_pct(return_pct(431.1, 2.15, 2), 0) not in posts[("discord", "basic")]  # the first fill only
