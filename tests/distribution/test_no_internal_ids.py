"""No internal identifier in anything a subscriber sees (issue 11).

Every route of every event kind is rendered - positions of every kind with analytics that
hold ids (the demo's ``snapshot_id``), reports of every kind with and without a public base
URL, with and without the page attached - and every string a platform receives (text, each
embed string, Reddit title, Discord thread name) is searched for the old ``ref:`` tag, a ULID
(event ids, correlation ids, snapshot ids), the 24-hex idempotency key, any long hex run and
a UUID. The same is checked on what the DistributorService actually wrote to the outbox.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bot.distribution import DistributorService, idempotency_key
from bot.distribution.render import ROUTES, Rendered, Renderer, is_internal_id
from core.bus.events import PositionEvent, ReportEvent
from core.runtime.consumers import consumer_for
from tests.helpers import make_context

ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
HEX = re.compile(r"[0-9a-f]{24}|[0-9a-fA-F]{16,}")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
EVENT_ID = "01M8Y5X4200E8547MWGW4H401Q"
CORR = "01M8Y1HYY0T9NS5SEZX35HG00P"
SNAPSHOT = "01M8Y5X4200E8547MWGW4H4011"
POSITION_KINDS = ("entry", "stop_moved", "partial_exit", "closed")
REPORT_KINDS = ("premarket", "intraday", "close", "monthly")


def strings(r: Rendered) -> list[str]:
    """Everything of a rendered post a platform shows."""
    out = [r.text, r.title or "", r.thread_name or ""]

    def walk(x: Any) -> None:
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)

    walk(r.embed)
    return out


def assert_clean(where: Any, texts: list[str], idem: str) -> None:
    for s in texts:
        assert "ref:" not in s, (where, s)
        assert not ULID.search(s), (where, ULID.search(s), s)
        assert idem not in s and idem[:10] not in s, (where, s)
        assert not HEX.search(s), (where, HEX.search(s), s)
        assert not UUID.search(s), (where, s)


def position(kind: str) -> PositionEvent:
    closed = kind == "closed"
    return PositionEvent(
        id=EVENT_ID, ts=1_764_772_260_000, correlation_id=CORR, kind=kind, position_id=f"pos-{CORR}",
        strategy="gamma_0dte", symbol="SPY", expiry="2026-12-03", strike=589, right="P", direction="bearish",
        horizon="0dte", qty=2, qty_open=0 if closed else 2, price=None if kind == "stop_moved" else 1.2,
        entry_price=1.2, stop=0.6, targets=[1.8, 2.4], confidence=61.0, explanation="Dealers short gamma.",
        account_risk_pct=0.23, triggers=["spot above max-gamma"], reason="target 1", realized_pnl=120.0 if closed else 0.0,
        analytics={"snapshot_id": SNAPSHOT, "gex_total": 1.3e9, "chain_ids": "a,b", "source": EVENT_ID,
                   "run": "9f1c2e3d-4b5a-4c6d-8e7f-0a1b2c3d4e5f", "key": "0123456789abcdef01234567",
                   "vpin": 0.62})


def report(kind: str, folder: Path | None) -> ReportEvent:
    day = "2026-11" if kind == "monthly" else "2026-12-03"
    base = folder or Path("/nonexistent")
    paths = {t: str(base / f"{day}-{kind}-{t}.html") for t in ("premium", "basic", "free")}
    if folder is not None:
        for p in paths.values():
            Path(p).write_text("<html>report</html>")
    return ReportEvent(id=EVENT_ID, ts=1_764_768_600_000, correlation_id=CORR, kind=kind, status="approved",
                       path=paths["premium"], paths=paths, report_id=f"rep-{CORR}", summary="SPX pinned 5905")


@pytest.mark.parametrize("kind", POSITION_KINDS)
def test_no_position_post_shows_an_internal_id(kind: str) -> None:
    ev = position(kind)
    for channel, tier in ROUTES[kind]:
        idem = idempotency_key(ev.correlation_id, ev.id, channel, tier)
        for entry_qty in (2, None):
            r = Renderer().position(ev, channel, tier, idem, entry_qty)
            assert_clean((channel, tier, kind), strings(r), idem)
    premium = Renderer().position(position("entry"), "discord", "premium", "k" * 24, 2)
    assert "gex\\_total 1.30B" in premium.text and "vpin 0.62" in premium.text  # the real analytics stay


@pytest.mark.parametrize("base_url", [None, "https://reports.example.test/daily"])
@pytest.mark.parametrize("with_files", [True, False])
def test_no_report_post_shows_an_internal_id(tmp_path: Path, base_url: str | None, with_files: bool) -> None:
    for kind in REPORT_KINDS:
        ev = report(kind, tmp_path if with_files else None)
        for channel, tier in ROUTES["report"]:
            idem = idempotency_key(ev.correlation_id, ev.report_id, channel, tier)
            r = Renderer(report_base_url=base_url).report(ev, channel, tier, idem)
            assert r is not None
            assert_clean((channel, tier, kind, base_url), strings(r), idem)


def test_id_entries_are_recognised() -> None:
    assert is_internal_id("snapshot_id", "x") and is_internal_id("trade_ids", 3) and is_internal_id("ID", 1.0)
    assert is_internal_id("source", EVENT_ID) and is_internal_id("key", "0123456789abcdef01234567")
    assert not is_internal_id("gex_total", 1.3e9) and not is_internal_id("regime", "short gamma")
    assert not is_internal_id("valid", 1.0)


async def test_what_the_distributor_posts_shows_no_internal_id(bus, tmp_path: Path) -> None:
    # every stop move posts (no coalescing), so every route of every kind is checked
    ctx = make_context(bus, out_dir=str(tmp_path), distribution={
        "sink": "outbox", "stop_updates": {"min_interval_s": 0, "min_move_pct": 0}})
    svc = DistributorService(ctx)
    await svc.start()
    consumer = consumer_for(svc)
    assert consumer is not None
    try:
        for kind in POSITION_KINDS:
            fields = position(kind).model_dump(exclude={"type", "id", "ts", "correlation_id", "source"})
            await bus.publish(bus.make(PositionEvent, correlation_id=CORR, **fields))
            await consumer.poll(svc.handle)
        rep = report("close", tmp_path)
        await bus.publish(bus.make(ReportEvent, **rep.model_dump(exclude={"type", "id", "ts", "source"})))
        await consumer.poll(svc.handle)
        bus.clock.set_ms(bus.clock.ms() + 600_000)
        for _ in range(20):
            await svc.on_timer(bus.clock.now())
    finally:
        await svc.stop()
    lines = [json.loads(x) for x in (tmp_path / "outbox.jsonl").read_text().splitlines()]
    assert len(lines) == sum(len(ROUTES[k]) for k in (*POSITION_KINDS, "report"))
    for line in lines:
        assert_clean((line["channel"], line["tier"], line["event"]), [line["text"]], "x" * 24)
