"""The operator's approval cards in outbox.html, built after the run from the journal of a real
approval flow (ApprovalService, the Lua claim of decide_signal, the expiry sweep): the card with
contract, size, risk and verdict, the three buttons drawn inert, and the outcome of each."""

from __future__ import annotations

import re
from pathlib import Path

from bot.distribution.outbox_cards import CardSettings
from bot.distribution.outbox_html import render_outbox_html
from core.approvals.decide import decide_signal
from core.approvals.service import ApprovalService
from core.bus.events import AuditEvent
from core.runtime.demo import journal_line, read_journal
from tests.helpers import make_context
from tests.telegram._util import make_signal, verdict


async def _handle(svc, ev) -> None:
    await svc.bus.publish(ev)  # in the journal, as in the demo
    tx = svc.bus.tx()
    await svc.handle(ev, tx)
    await tx.commit()


async def _policy(bus, policy: str) -> None:
    await bus.redis.hset(bus.keys.hash("runtime"), "approval_policy", policy)


async def _day(bus, tmp_path: Path) -> str:
    svc = ApprovalService(make_context(bus))
    now = bus.clock.now()
    await _policy(bus, "auto")  # S1: the overseer approves, the policy decides at once
    await _handle(svc, verdict(bus, make_signal(now, "S1"), decision="approve"))
    await _policy(bus, "manual")
    await _handle(svc, verdict(bus, make_signal(now, "S2", triggers=["<script>x</script> & co"])))
    bus.clock.advance(60)
    assert (await decide_signal(bus, "S2", "rejected", "tg:42")).ok  # the admin presses Reject
    await _handle(svc, verdict(bus, make_signal(bus.clock.now(), "S3")))
    await _handle(svc, verdict(bus, make_signal(bus.clock.now(), "S4")))
    assert (await decide_signal(bus, "S4", "approved", "tg:42", half=True)).ok
    await bus.publish(bus.make(AuditEvent, correlation_id="corr-S4", actor="execution", action="order_refused",
                               detail={"order_id": "ent-S4", "purpose": "entry", "reason": "SPREAD_TOO_WIDE",
                                       "detail": "spread 14% of mid (max 10%)", "qty": 2}))
    await _handle(svc, verdict(bus, make_signal(bus.clock.now(), "S5"), decision="reject",
                               reasons=["MAX_POSITIONS"], concerns=["MAX_POSITIONS: 5 open (max 5)"]))
    bus.clock.advance(95)  # past gamma_0dte's 90 s card: S3 expires
    await svc.on_timer(bus.clock.now())
    journal = tmp_path / "journal.jsonl"
    journal.write_text("".join(journal_line(e) + "\n" for e in await read_journal(bus)), encoding="utf-8")
    page = render_outbox_html(tmp_path / "outbox.jsonl", tmp_path / "outbox.html", journal,
                              CardSettings(100_000.0, {"gamma_0dte": 90}))
    return Path(page).read_text(encoding="utf-8")


def _card(page: str, sid: str) -> str:
    start = page.index(f'<div class="tg card" id="card-{sid}">')
    ends = [i for i in (page.find('<div class="tg ', start + 1), page.find("</td>", start)) if i > 0]
    return page[start:min(ends)]


BUTTONS = re.compile(r'<button type="button" disabled>([^<]*)</button>')


async def test_every_card_shows_the_trade_the_inert_buttons_and_its_outcome(bus, tmp_path):
    page = await _day(bus, tmp_path)
    for sid in ("S1", "S2", "S3", "S4"):
        card = _card(page, sid)
        assert "BUY 4 × SPY 11/20/26 590C" in card, sid  # contract and size as sent
        assert "Premium at risk <b>$860.00</b> (0.86% of account)" in card, sid
        assert "Overseer: <b>" in card and "Approval needed" in card, sid
        assert BUTTONS.findall(card) == ["✅ Approve", "½ Half (2)", "❌ Reject"], sid
        assert "<script" not in card
    s1 = _card(page, "S1")
    assert 'class="tg-outcome approved">✅ approved automatically at 09:30 (policy auto)' in s1
    assert "<b>APPROVED</b>" in s1 and "by policy auto at 09:30:00 ET" in s1  # the edit
    s2 = _card(page, "S2")
    assert 'class="tg-outcome rejected">❌ rejected by admin 42 at 09:31' in s2
    assert "<b>REJECTED</b>" in s2 and "Triggers: &lt;script&gt;x&lt;/script&gt; &amp; co" in s2
    s3 = _card(page, "S3")
    assert 'class="tg-outcome expired">⌛ expired at 09:32: no decision, nothing ordered' in s3
    assert "Expires 09:32:30 ET" in s3 and "<b>EXPIRED</b>" in s3
    s4 = _card(page, "S4")
    assert "⛔ approved at 09:31, refused at placement at 09:31: SPREAD_TOO_WIDE" in s4
    assert "Approved 2 of 4 (half size)" in s4 and "spread 14% of mid (max 10%)" in s4
    # a signal the overseer rejected never reaches the admin: no card, named in the header
    assert 'id="card-S5"' not in page
    assert "1 signal rejected by the overseer's rules never reach the admin (top reasons: MAX_POSITIONS 1)" in page
    assert page.count('<div class="tg card"') == 4


async def test_a_torn_journal_line_is_skipped_and_counted(bus, tmp_path):
    await _day(bus, tmp_path)
    journal = tmp_path / "journal.jsonl"
    with journal.open("a", encoding="utf-8") as fh:
        fh.write('{"type":"approval.decision","ts":"2026-11-20T09:40:00.000-05:00","signal":{"id"\n')
    page = Path(render_outbox_html(tmp_path / "outbox.jsonl", tmp_path / "o.html", journal)).read_text()
    assert "1 unreadable journal line skipped" in page and page.count('<div class="tg card"') == 4
