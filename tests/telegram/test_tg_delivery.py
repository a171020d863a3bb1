"""The outbound queue against the fake's faults: 429 storms, 5xx / dropped connections,
a chat that blocks the bot, the per-chat rate, long texts, hostile text in HTML mode,
restarts, re-delivered events; alert routing; report approval by document."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from bot.telegram.splitter import split_html
from core.bus.events import AlertEvent, AuditEvent, ControlEvent, ReportEvent
from core.control.halt import set_halt
from tests.fakes.telegram_api import _check_html
from tests.telegram._util import ADMIN, ADMIN_CHAT, buttons_of, eventually, position, read_stream, visible

# python-telegram-bot itself warns when it builds a RetryAfter (int -> timedelta deprecation)
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


def alert(bus, i: int, severity: str = "WARNING", state: str = "raised", **over) -> AlertEvent:
    fields = {"code": f"code{i}", "severity": severity, "state": state, "message": f"warning number {i}"}
    fields.update(over)
    return bus.make(AlertEvent, **fields)


def texts(fake, contains: str) -> list[str]:
    return [m["text"] for m in fake.sent_messages(ADMIN_CHAT) if contains in (m.get("text") or "")]


async def test_429_storm_delays_but_loses_nothing(make_bot, tbus, telegram_fake) -> None:
    h = await make_bot()
    telegram_fake.fail_next("sendMessage", "429", count=3, retry_after=0.4)
    t0 = time.monotonic()
    await h.publish(*[alert(tbus, i) for i in range(6)])
    await telegram_fake.wait_for_async(lambda: len(texts(telegram_fake, "warning number")) == 6, timeout=10)
    elapsed = time.monotonic() - t0
    got = texts(telegram_fake, "warning number")
    assert [t.split("warning number ")[1] for t in got] == ["0", "1", "2", "3", "4", "5"]  # in order
    reqs = telegram_fake.requests("sendMessage")
    assert [r.fault for r in reqs[:4]] == ["429", "429", "429", None]
    for a, b in itertools.pairwise(reqs[:4]):  # each retry waited retry_after
        assert b.timestamp - a.timestamp >= 0.38
    assert elapsed >= 1.15
    await eventually(h.bot.outbox.size, 0)


async def test_per_chat_rate(make_bot, tbus, telegram_fake) -> None:
    h = await make_bot(per_chat_messages_per_s=8.0)
    await h.publish(*[alert(tbus, i) for i in range(5)])
    await telegram_fake.wait_for_async(lambda: len(texts(telegram_fake, "warning number")) == 5, timeout=10)
    stamps = [r.timestamp for r in telegram_fake.requests("sendMessage")]
    assert min(b - a for a, b in itertools.pairwise(stamps)) >= 0.11  # 1/8 s apart


async def test_network_errors_retry_with_backoff(make_bot, tbus, telegram_fake) -> None:
    h = await make_bot()
    telegram_fake.fail_next("sendMessage", "5xx", status=502)
    telegram_fake.fail_next("sendMessage", "drop")
    telegram_fake.fail_next("sendMessage", "5xx", status=500)
    await h.publish(alert(tbus, 1))
    await telegram_fake.wait_for_async(lambda: texts(telegram_fake, "warning number 1"), timeout=10)
    assert [r.fault for r in telegram_fake.requests("sendMessage")] == ["5xx", "drop", "5xx", None]
    assert len(texts(telegram_fake, "warning number 1")) == 1


async def test_blocked_chat_goes_to_dead_letter_not_lost(make_bot, tbus, telegram_fake) -> None:
    h = await make_bot(max_attempts=2)
    telegram_fake.block_chat(ADMIN_CHAT)
    await h.publish(alert(tbus, 1))
    dead_key = tbus.keys.key("dead_letter", "telegram")

    async def dead() -> int:
        return await tbus.redis.xlen(dead_key)

    await eventually(dead, 1)
    [(_id, entry)] = await tbus.redis.xrange(dead_key)
    assert "Forbidden" in entry["error"] and "warning number 1" in entry["payload"]
    assert any(isinstance(a, AuditEvent) and a.action == "telegram.dead_letter" for a in await read_stream(tbus, "audit"))
    telegram_fake.block_chat(ADMIN_CHAT, False)
    await h.publish(alert(tbus, 2))
    await telegram_fake.wait_for_async(lambda: texts(telegram_fake, "warning number 2"), timeout=5)


async def test_long_text_is_split_on_lines(make_bot, tbus, telegram_fake) -> None:
    await make_bot()
    import json

    pipe = tbus.redis.pipeline()
    for i in range(150):
        pipe.hset(tbus.keys.hash("positions"), f"pos-{i:03d}", json.dumps({
            "symbol": "SPY", "strategy": "gamma_0dte <&> swing", "right": "C", "strike": 500 + i,
            "expiry": "2026-11-20", "qty_open": 1, "avg_entry": 1.5, "stop": 1.0}))
    await pipe.execute()
    n = len(telegram_fake.sent_messages(ADMIN_CHAT))
    telegram_fake.send_command(ADMIN, ADMIN_CHAT, "/positions")
    await telegram_fake.wait_for_async(
        lambda: any("pos-149" in (m.get("text") or "") for m in telegram_fake.sent_messages(ADMIN_CHAT)[n:]),
        timeout=10)
    parts = [m["text"] for m in telegram_fake.sent_messages(ADMIN_CHAT)[n:]]
    assert len(parts) >= 3 and all(len(p) <= 4096 for p in parts)
    joined = "\n".join(parts)
    order = [joined.index(f"/close pos-{i:03d}") for i in range(150)]
    assert order == sorted(order)
    for p in parts:  # every part ends on a whole line and is valid HTML on its own
        assert _check_html(p)[0] is None
        assert not p.endswith("/close pos-")


def test_split_html_keeps_tags_balanced() -> None:
    text = "<b>title</b>\n<pre>" + "\n".join(f"row {i} &amp; more" for i in range(400)) + "</pre>\nend"
    parts = split_html(text, 1000)
    assert len(parts) > 3 and all(len(p) <= 1000 for p in parts)
    for p in parts:
        assert _check_html(p)[0] is None, p[:80]
    assert parts[1].startswith("<pre>") and parts[0].endswith("</pre>")
    plain = "".join(visible(p) for p in parts)
    assert plain.count("&") == 400
    long_line = "x " * 3000  # a single line longer than a part is cut at a space
    parts = split_html(long_line, 1000)
    assert all(len(p) <= 1000 for p in parts) and "".join(parts) == long_line


async def test_hostile_text_cannot_break_the_markup(make_bot, tbus, telegram_fake) -> None:
    h = await make_bot()
    evil = "</b><a href='http://x'>click</a> & <script>alert(1)</script> <i>unclosed\n\nnew line"
    await h.publish(alert(tbus, 9, message=evil, subject="<b>", explanation="&amp; &bogus;"))
    msg = await telegram_fake.wait_for_sent_async(ADMIN_CHAT, "WARNING", timeout=5)
    shown = visible(msg["text"])
    assert "</b><a href='http://x'>click</a> & <script>alert(1)</script> <i>unclosed new line" in shown
    assert "&amp; &bogus;" in shown
    assert _check_html(msg["text"])[0] is None


async def test_queue_survives_restart_and_redelivery_sends_once(make_bot, tbus, telegram_fake) -> None:
    h = await make_bot()
    await h.bot.stop()
    ev = alert(tbus, 5)
    await h.publish(ev)  # handled while Telegram is unreachable: only queued
    tx = tbus.tx()
    await h.bot.handle(ev, tx)  # the same event handled again (crash before the ack)
    await tx.commit()
    assert texts(telegram_fake, "warning number 5") == []
    assert await h.bot.outbox.size() == 1
    await make_bot()
    await telegram_fake.wait_for_async(lambda: texts(telegram_fake, "warning number 5"), timeout=5)
    tx = tbus.tx()
    await h.bot.handle(ev, tx)  # and once more after it was delivered
    await tx.commit()
    await h.publish(alert(tbus, 6))
    await telegram_fake.wait_for_async(lambda: texts(telegram_fake, "warning number 6"), timeout=5)
    assert len(texts(telegram_fake, "warning number 5")) == 1


async def test_alert_routing(make_bot, tbus, telegram_fake) -> None:
    h = await make_bot(alerts={"warnings": "silent", "fills": "off", "closes": "on", "critical": "on"})
    await h.publish(alert(tbus, 1), alert(tbus, 2, severity="INFO", message="info only"),
                    position(tbus, "entry", corr="c1"))
    await telegram_fake.wait_for_async(lambda: texts(telegram_fake, "warning number 1"), timeout=5)
    req = next(r for r in telegram_fake.requests("sendMessage") if "warning number 1" in r.params["text"])
    assert req.params.get("disable_notification") is True
    await set_halt(tbus, "overseer critical", "overseer")
    await h.publish(alert(tbus, 3, severity="CRITICAL", message="broker down"),
                    alert(tbus, 4, severity="CRITICAL", state="cleared", message="broker back"),
                    position(tbus, "closed", corr="c1"),
                    alert(tbus, 5, message="old news").model_copy(update={"ts": tbus.clock.ms() - 7_200_000}))
    crit = await telegram_fake.wait_for_sent_async(ADMIN_CHAT, "broker down", timeout=5)
    assert "Trading is HALTED" in crit["text"]
    cleared = await telegram_fake.wait_for_sent_async(ADMIN_CHAT, "broker back", timeout=5)
    assert "stays <b>HALTED</b>" in cleared["text"]
    closed = await telegram_fake.wait_for_sent_async(ADMIN_CHAT, "Closed", timeout=5)
    assert "Realized <b>+$337.40</b>" in closed["text"]
    halt_notice = await telegram_fake.wait_for_sent_async(ADMIN_CHAT, "Trading HALTED", timeout=5)
    assert "overseer" in halt_notice["text"]
    all_text = " ".join(m.get("text") or "" for m in telegram_fake.sent_messages(ADMIN_CHAT))
    assert "info only" not in all_text and "Filled" not in all_text and "old news" not in all_text
    # an admin's own control action is not echoed
    n = len(telegram_fake.sent_messages(ADMIN_CHAT))
    await h.publish(tbus.make(ControlEvent, action="flatten", by=f"tg:{ADMIN}"))
    await h.publish(alert(tbus, 7))
    await telegram_fake.wait_for_async(lambda: texts(telegram_fake, "warning number 7"), timeout=5)
    assert len(telegram_fake.sent_messages(ADMIN_CHAT)) == n + 1


async def test_report_approval_by_document(make_bot, tbus, telegram_fake, tmp_path: Path) -> None:
    h = await make_bot(sections={"mode": "live"})
    page = tmp_path / "close-premium.html"
    page.write_text("<html><body>close report</body></html>")
    built = tbus.make(ReportEvent, kind="close", status="built", report_id="rep-close-1", path=str(page),
                      summary="SPX pinned <5900> & VIX down", paths={"premium": str(page)})
    await h.publish(built)
    doc = await telegram_fake.wait_for_async(lambda: telegram_fake.documents(ADMIN_CHAT), timeout=5)
    [d] = doc
    assert d["filename"] == "close-premium.html" and d["data"] == page.read_bytes()
    assert "SPX pinned &lt;5900&gt; &amp; VIX down" in d["caption"]
    msg = d["message"]
    assert buttons_of(msg) == ["ra:rep-close-1", "rr:rep-close-1"]
    answer = await h.press(msg, "ra:rep-close-1")
    assert answer["text"] == "Approved"
    reports = [e for e in await read_stream(tbus, "reports") if isinstance(e, ReportEvent)]
    assert [r.status for r in reports] == ["built", "pending_approval", "approved"]
    assert reports[-1].by == f"tg:{ADMIN}"
    await h.pump()
    edit = await h.wait_edit(ADMIN_CHAT, msg["message_id"], "APPROVED")
    assert edit["method"] == "editMessageCaption" and "reply_markup" not in telegram_fake.message(
        ADMIN_CHAT, msg["message_id"])
    # a report whose file is missing still reaches the admin, as text with the buttons
    lost = tbus.make(ReportEvent, kind="intraday", status="built", report_id="rep-intra-1",
                     path=str(tmp_path / "gone.html"), summary="midday")
    await h.publish(lost)
    text = await telegram_fake.wait_for_sent_async(ADMIN_CHAT, "gone.html", timeout=5)
    assert "not found" in text["text"] and buttons_of(text) == ["ra:rep-intra-1", "rr:rep-intra-1"]
