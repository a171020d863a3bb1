"""Tier timing and threading through the real clients against the Discord / X / Reddit fakes."""

from __future__ import annotations

import json
from datetime import timedelta

from bot.distribution import idempotency_key
from core.bus.events import AuditEvent, DeliveryEvent
from core.runtime.sim_runner import SimRunner
from tests.distribution._util import CHANNELS, SUBREDDIT, deliveries, position, read_stream, report


async def test_fill_premium_now_basic_60s_free_300s_on_the_sim_runner(bus, make_service, live_secrets, dfake,
                                                                      xfake, rfake):
    h = await make_service(live_secrets, subreddit=SUBREDDIT)
    t0 = bus.clock.ms()
    ev = position(bus, "entry")
    await bus.publish(ev)  # the fill's position update, consumed by the runner's consumer group
    runner = SimRunner([h.svc], bus.clock)
    await runner.run(bus.clock.now(), bus.clock.now() + timedelta(minutes=10))

    delivered = await deliveries(bus, "delivered")
    by = {(d.channel, d.tier): d for d in delivered}
    assert set(by) == {("discord", "premium"), ("discord", "basic"), ("discord", "free"), ("x", "free"),
                       ("reddit", "free")}
    # delivery time (the DeliveryEvent's ts, stamped by the SimClock) minus the fill's ts: exact
    assert by[("discord", "premium")].ts - ev.ts == 0
    assert by[("discord", "basic")].ts - ev.ts == 60_000
    for key in (("discord", "free"), ("x", "free"), ("reddit", "free")):
        assert by[key].ts - ev.ts == 300_000
        assert by[key].due_ts == t0 + 300_000
    # what the platforms hold
    prem = dfake.messages(CHANNELS["premium"])
    assert len(prem) == 1 and prem[0]["embeds"][0]["title"].startswith("🟢 ENTRY · SPY 11/20/26 590C")
    fields = {f["name"]: f["value"] for f in prem[0]["embeds"][0]["fields"]}
    assert fields["Size"] == "3 contracts" and fields["Fill"] == "$2.15" and fields["Stop"] == "$1.55"
    assert prem[0]["nonce"] == idempotency_key("trade-1", ev.id, "discord", "premium")  # enforce_nonce key
    basic = dfake.messages(CHANNELS["basic"])
    assert len(basic) == 1 and "$2.15" in basic[0]["content"] and "3 contracts" not in basic[0]["content"]
    free = dfake.messages(CHANNELS["free"])
    assert len(free) == 1 and "SPY" in free[0]["content"] and "$" not in free[0]["content"]
    tweets = xfake.tweets()
    assert len(tweets) == 1 and "Not investment advice" in tweets[0]["text"]
    subs = rfake.submissions(SUBREDDIT)
    assert len(subs) == 1 and "Not investment advice" in subs[0]["selftext"]
    assert subs[0]["title"] == "New trade: SPY, bullish (calls)"
    # every outbound message also has an audit record
    audits = [e for e in await read_stream(bus, "audit") if isinstance(e, AuditEvent)]
    assert sum(a.action == "delivery.delivered" for a in audits) == 5
    assert all(d.correlation_id == "trade-1" for d in delivered)


async def test_stop_move_threads_premium_and_basic_not_free(bus, make_service, live_secrets, dfake, xfake, rfake):
    h = await make_service(live_secrets, subreddit=SUBREDDIT)
    await h.publish(position(bus, "entry"))
    await h.advance(30)
    await h.publish(position(bus, "stop_moved"))
    await h.advance(400)

    for tier in ("premium", "basic"):
        root = dfake.messages(CHANNELS[tier])
        assert len(root) == 1, tier
        threads = dfake.threads(CHANNELS[tier])
        assert len(threads) == 1 and threads[0]["id"] == root[0]["id"]  # thread created from the root message
        replies = dfake.messages(int(threads[0]["id"]))
        assert len(replies) == 1
    prem_reply = dfake.messages(int(dfake.threads(CHANNELS["premium"])[0]["id"]))[0]
    assert prem_reply["embeds"][0]["title"].startswith("🔁 STOP MOVED")
    assert {f["name"]: f["value"] for f in prem_reply["embeds"][0]["fields"]}["New stop"] == "$1.95"
    basic_reply = dfake.messages(int(dfake.threads(CHANNELS["basic"])[0]["id"]))[0]
    assert "Stop adjusted" in basic_reply["content"] and "$1.95" not in basic_reply["content"]
    # free tier, X and Reddit: only the entry teaser, no thread
    assert len(dfake.messages(CHANNELS["free"])) == 1 and dfake.threads(CHANNELS["free"]) == []
    assert len(xfake.tweets()) == 1 and rfake.comments() == []
    stop_events = [d for d in await deliveries(bus, "delivered") if d.event == "stop_moved"]
    assert {(d.channel, d.tier) for d in stop_events} == {("discord", "premium"), ("discord", "basic")}
    roots = {d.tier: d.message_id for d in await deliveries(bus, "delivered") if d.event == "entry"
             and d.channel == "discord"}
    assert all(d.reply_to == roots[d.tier] for d in stop_events)


async def test_close_replies_everywhere_and_free_result_teaser(bus, make_service, live_secrets, dfake, xfake, rfake):
    h = await make_service(live_secrets, subreddit=SUBREDDIT)
    await h.publish(position(bus, "entry"))
    await h.advance(20)
    await h.publish(position(bus, "stop_moved"))
    await h.advance(20)
    await h.publish(position(bus, "partial_exit"))
    await h.advance(20)
    await h.publish(position(bus, "closed"))
    await h.advance(600)

    for tier, n_replies in (("premium", 3), ("basic", 3), ("free", 1)):
        roots = dfake.messages(CHANNELS[tier])
        assert len(roots) == 1, tier
        (thread,) = dfake.threads(CHANNELS[tier])
        assert len(dfake.messages(int(thread["id"]))) == n_replies, tier
    free_close = dfake.messages(int(dfake.threads(CHANNELS["free"])[0]["id"]))[0]["content"]
    assert "win" in free_close and "$" not in free_close and "590" not in free_close
    # basic: exit price and result, never the size or P&L dollars
    basic_close = dfake.messages(int(dfake.threads(CHANNELS["basic"])[0]["id"]))[-1]["content"]
    assert "$3.60" in basic_close and "+$" not in basic_close
    # X: reply chain (each update replies to the last tweet of the chain)
    chain = xfake.thread(xfake.tweets()[0]["id"])
    assert len(chain) == 2 and chain[1]["in_reply_to_tweet_id"] == chain[0]["id"]
    assert "Not investment advice" in chain[1]["text"] and "win" in chain[1]["text"]
    # Reddit: one submission, the result as a comment on it
    (sub,) = rfake.submissions(SUBREDDIT)
    (comment,) = rfake.comments(sub["id"])
    assert comment["parent_id"] == sub["name"] and "win" in comment["body"]
    closed = [d for d in await deliveries(bus, "delivered") if d.event == "closed"]
    assert {(d.channel, d.tier) for d in closed} == {("discord", "premium"), ("discord", "basic"),
                                                     ("discord", "free"), ("x", "free"), ("reddit", "free")}
    # order in every chain follows the events
    prem_thread = dfake.messages(int(dfake.threads(CHANNELS["premium"])[0]["id"]))
    assert [m["embeds"][0]["title"].split(" · ")[0] for m in prem_thread] == ["🔁 STOP MOVED", "💰 PARTIAL EXIT",
                                                                             "🏁 CLOSED"]


async def test_approved_report_goes_out_per_tier_at_each_delay(bus, make_service, live_secrets, dfake, xfake,
                                                              rfake):
    h = await make_service(live_secrets, subreddit=SUBREDDIT, report_base_url="https://quanticity.example/r")
    await h.publish(report(bus, status="built"))  # not approved yet: nothing
    ev = report(bus)
    await h.publish(ev)
    await h.publish(report(bus))  # the same report approved twice: posted once
    await h.advance(400)
    got = {(d.channel, d.tier): d for d in await deliveries(bus, "delivered")}
    assert len(await deliveries(bus, "delivered")) == 5
    assert got[("discord", "premium")].ts == ev.ts
    assert got[("discord", "basic")].ts == ev.ts + 60_000
    assert got[("x", "free")].ts == ev.ts + 300_000
    prem = dfake.messages(CHANNELS["premium"])[0]["embeds"][0]
    assert "https://quanticity.example/r/close-premium.html" in str(prem["fields"])
    assert "close-basic.html" in dfake.messages(CHANNELS["basic"])[0]["content"]
    assert "close-free.html" in xfake.tweets()[0]["text"]
    assert "close-premium" not in xfake.tweets()[0]["text"]
    assert rfake.submissions(SUBREDDIT)[0]["title"].startswith("Market close recap")


async def test_bad_position_is_counted_and_skipped(bus, make_service, live_secrets, dfake, xfake, rfake):
    h = await make_service(live_secrets)
    # the event model refuses these values, so they go on the stream as raw JSON (NaN as the literal)
    for corr, bad in (("trade-1", {"price": float("nan")}), ("t2", {"strike": -5.0})):
        good = position(bus, "entry", corr=corr)
        await bus.redis.xadd(bus.stream_key(good), {"t": good.type, "d": json.dumps({**good.model_dump(), **bad})})
    await h.consumer.poll(h.svc.handle)
    assert h.consumer.rejected == 2  # dead-lettered at decode, counted
    await h.advance(400)
    assert await deliveries(bus) == []
    assert dfake.messages(CHANNELS["premium"]) == []


async def test_rehandled_event_is_posted_once(bus, make_service, live_secrets, dfake, xfake, rfake):
    h = await make_service(live_secrets, channels=["discord"])
    ev = position(bus, "entry")
    for _ in range(2):  # e.g. the done-marker expired and the event came again
        tx = bus.tx()
        await h.svc.handle(ev, tx)
        await tx.commit()
        await h.advance(400)
    assert [len(dfake.messages(c)) for c in CHANNELS.values()] == [1, 1, 1]
    assert len([d for d in await deliveries(bus) if isinstance(d, DeliveryEvent)]) == 3


async def test_a_broken_template_alerts_and_does_not_hold_back_other_tiers(bus, make_service, live_secrets, dfake,
                                                                          xfake, rfake, tmp_path):
    import shutil

    from bot.distribution.render import TEMPLATES_DIR, Renderer
    from core.bus.events import AlertEvent

    broken = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, broken)
    (broken / "discord" / "basic" / "entry.j2").write_text("{{ t.size }}")  # premium-only field: StrictUndefined
    h = await make_service(live_secrets, channels=["discord"])
    h.svc.renderer = Renderer(broken)
    await h.publish(position(bus, "entry"))
    await h.advance(400)
    assert [len(dfake.messages(c)) for c in CHANNELS.values()] == [1, 0, 1]
    alerts = [a for a in await read_stream(bus, "alerts") if isinstance(a, AlertEvent)]
    assert [a.code for a in alerts] == ["delivery_render_failed"] and alerts[0].subject == "discord/basic"
