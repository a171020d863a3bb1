"""Exactly-once across crashes, rate-limit storms, dead letters and restarts,
through discord.py / tweepy / praw against the local fakes and the real Redis."""

from __future__ import annotations

import json

import pytest

from bot.distribution import idempotency_key
from core.bus.events import AlertEvent, AuditEvent
from tests.distribution._util import CHANNELS, SUBREDDIT, deliveries, position, read_stream


class Crash(BaseException):
    """The process dies (not an Exception: nothing in the service may swallow it)."""


def crash_before_record(h, channel: str, tier: str) -> None:
    """Make the service die right after a successful post, before recording it."""
    original = h.svc.outcomes.delivered

    async def dying(spec, *args, **kwargs):
        if spec["channel"] == channel and spec["tier"] == tier:
            raise Crash(f"killed after posting {channel}/{tier}")
        return await original(spec, *args, **kwargs)

    h.svc.outcomes.delivered = dying


def platform_posts(channel: str, dfake, xfake, rfake) -> list[dict]:
    if channel == "discord":
        return dfake.messages(CHANNELS["premium"])
    if channel == "x":
        return xfake.tweets()
    return rfake.submissions(SUBREDDIT)


@pytest.mark.parametrize("channel,tier,when", [("discord", "premium", 0), ("x", "free", 300),
                                               ("reddit", "free", 300)])
async def test_killed_between_post_and_record_posts_once_after_restart(bus, make_service, live_secrets, dfake, xfake,
                                                                       rfake, channel, tier, when):
    h1 = await make_service(live_secrets, subreddit=SUBREDDIT, inflight_lease_s=30)
    ev = position(bus, "entry")
    await h1.publish(ev)
    crash_before_record(h1, channel, tier)
    with pytest.raises(Crash):
        await h1.advance(when + 1)
    await h1.svc.stop()
    assert len(platform_posts(channel, dfake, xfake, rfake)) == 1  # it did post
    idem = idempotency_key("trade-1", ev.id, channel, tier)
    record = await bus.redis.hgetall(h1.svc.delivery_key(idem))
    assert record.get("inflight") and record.get("status") is None  # marker written before posting

    h2 = await make_service(live_secrets, subreddit=SUBREDDIT, inflight_lease_s=30)  # a new process, same Redis
    await h2.advance(400)
    posts = platform_posts(channel, dfake, xfake, rfake)
    assert len(posts) == 1  # no duplicate
    mine = [d for d in await deliveries(bus, "delivered") if (d.channel, d.tier) == (channel, tier)]
    assert len(mine) == 1
    expected_id = posts[0]["name"] if channel == "reddit" else str(posts[0]["id"])
    assert mine[0].message_id == expected_id
    audits = [a for a in await read_stream(bus, "audit") if isinstance(a, AuditEvent)
              and a.detail.get("idempotency_key") == idem]
    assert audits[-1].detail["reconciled"] is True
    # everything else was delivered normally by the new process
    assert len(await deliveries(bus, "delivered")) == 5


@pytest.mark.parametrize("channel", ["discord", "x", "reddit"])
async def test_lost_answer_is_reconciled_not_reposted(bus, make_service, live_secrets, dfake, xfake, rfake, channel):
    """The platform applied the post but the answer was lost (dropped connection / 5xx)."""
    if channel == "discord":
        dfake.fail_next("send_message", "drop", applied=True)
    elif channel == "x":
        xfake.fail_next("create_tweet", "5xx", applied=True)
    else:
        rfake.fail_next("submit", "5xx", applied=True)
    h = await make_service(live_secrets, subreddit=SUBREDDIT, channels=[channel])
    await h.publish(position(bus, "entry"))
    await h.advance(400)
    assert len(platform_posts(channel, dfake, xfake, rfake)) == 1
    retries = await deliveries(bus, "retry")
    assert retries and retries[0].channel == channel
    first_tier = "premium" if channel == "discord" else "free"
    assert [d for d in await deliveries(bus, "delivered") if d.tier == first_tier]


async def test_discord_429_storm_is_delivered_later(bus, make_service, live_secrets, dfake, xfake, rfake):
    dfake.fail_next("send_message", "429", count=12, retry_after=0.05)
    h = await make_service(live_secrets, channels=["discord"])
    await h.publish(position(bus, "entry"))
    await h.advance(30)
    await h.publish(position(bus, "stop_moved"))
    await h.advance(400)
    assert [len(dfake.messages(c)) for c in CHANNELS.values()] == [1, 1, 1]
    (thread,) = dfake.threads(CHANNELS["premium"])
    assert len(dfake.messages(int(thread["id"]))) == 1
    retries = await deliveries(bus, "retry")
    assert retries and all("429" in r.error for r in retries)
    assert len(await deliveries(bus, "delivered")) == 5 and not await deliveries(bus, "dead_letter")


async def test_x_429_storm_waits_for_the_reset(bus, make_service, live_secrets, dfake, xfake, rfake):
    xfake.fail_next("create_tweet", "429", count=3, retry_after=1)
    h = await make_service(live_secrets, channels=["x"])
    ev = position(bus, "entry")
    await h.publish(ev)
    await h.advance(600)
    assert len(xfake.tweets()) == 1
    retries = await deliveries(bus, "retry")
    assert len(retries) == 3
    # each wait >= the platform's reset and the exponential backoff (2 s, 4 s, 8 s)
    audits = [a for a in await read_stream(bus, "audit") if isinstance(a, AuditEvent)
              and a.action == "delivery.retry"]
    waits = [a.detail["retry_at"] - r.ts for a, r in zip(audits, retries, strict=True)]
    assert waits[0] >= 2000 and waits[1] >= 4000 and waits[2] >= 8000
    (done,) = await deliveries(bus, "delivered")
    assert done.ts >= ev.ts + 300_000 + 14_000


async def test_reddit_ratelimit_and_429_storm(bus, make_service, live_secrets, dfake, xfake, rfake):
    rfake.fail_next("submit", "ratelimit", count=2, retry_after=120)  # "take a break for 2 minutes"
    rfake.fail_next("comment", "429", count=2, retry_after=1)  # prawcore also sleeps this long (wall clock)
    h = await make_service(live_secrets, channels=["reddit"], subreddit=SUBREDDIT)
    ev = position(bus, "entry")
    await h.publish(ev)
    await h.advance(60)
    await h.publish(position(bus, "closed"))
    await h.advance(1200)
    (sub,) = rfake.submissions(SUBREDDIT)
    assert len(rfake.comments(sub["id"])) == 1
    delivered = {d.event: d for d in await deliveries(bus, "delivered")}
    assert delivered["entry"].ts >= ev.ts + 300_000 + 240_000  # waited out two 2-minute RATELIMITs
    retries = await deliveries(bus, "retry")
    assert sum("RATELIMIT" in r.error for r in retries) == 2 and sum("429" in r.error for r in retries) == 2


async def test_abandoned_blocking_call_cannot_race_the_next_attempt(bus, make_service, live_secrets, dfake, xfake,
                                                                    rfake):
    """A 429 makes prawcore sleep before the next request, longer than our post timeout: the
    timed-out call still posts later. The next attempt waits for it, then finds it."""
    rfake.fail_next("submit", "429", retry_after=2)
    h = await make_service(live_secrets, channels=["reddit"], subreddit=SUBREDDIT, post_timeout_s=0.5)
    await h.publish(position(bus, "entry"))
    await h.advance(400)
    assert len(rfake.submissions(SUBREDDIT)) == 1
    errors = [r.error for r in await deliveries(bus, "retry")]
    assert errors[:2] == ["reddit 429 rate limited", "post timed out"]
    (done,) = await deliveries(bus, "delivered")
    assert done.message_id == rfake.submissions(SUBREDDIT)[0]["name"]


async def test_failures_go_to_dead_letter_with_one_alert(bus, make_service, live_secrets, dfake, xfake, rfake):
    dfake.fail_next("send_message", "5xx", status=503, count=3)
    h = await make_service(live_secrets, channels=["discord"], max_attempts=3)
    ev = position(bus, "entry")
    await h.publish(ev)
    await h.advance(30)
    dead = await deliveries(bus, "dead_letter")
    assert len(dead) == 1 and (dead[0].channel, dead[0].tier) == ("discord", "premium") and dead[0].attempts == 3
    assert len(await deliveries(bus, "retry")) == 2
    entries = await bus.redis.xrange(h.svc.k_dead)
    assert len(entries) == 1 and entries[0][1]["idempotency_key"] == idempotency_key("trade-1", ev.id, "discord",
                                                                                      "premium")
    # later deliveries keep flowing; the next premium update becomes the chain's root
    await h.publish(position(bus, "stop_moved"))
    await h.advance(600)
    assert len(dfake.messages(CHANNELS["premium"])) == 1
    assert len(dfake.messages(CHANNELS["basic"])) == 1 and len(dfake.threads(CHANNELS["basic"])) == 1
    alerts = [a for a in await read_stream(bus, "alerts") if isinstance(a, AlertEvent)]
    assert len(alerts) == 1 and alerts[0].severity == "WARNING" and alerts[0].code == "delivery_dead_letter"
    assert alerts[0].correlation_id == "trade-1"
    assert len(await deliveries(bus, "dead_letter")) == 1
    assert any(a.action == "delivery.dead_letter" for a in await read_stream(bus, "audit")
               if isinstance(a, AuditEvent))


async def test_thread_ids_survive_restarts(bus, make_service, live_secrets, dfake, xfake, rfake):
    h1 = await make_service(live_secrets, channels=["discord", "x"])
    await h1.publish(position(bus, "entry"))
    await h1.advance(301)
    await h1.svc.stop()
    h2 = await make_service(live_secrets, channels=["discord", "x"])
    await h2.publish(position(bus, "stop_moved"))
    await h2.advance(61)
    await h2.svc.stop()
    stored = json.loads(await bus.redis.hget(h2.svc.k_threads, "trade-1|discord|premium"))
    h3 = await make_service(live_secrets, channels=["discord", "x"])
    await h3.publish(position(bus, "partial_exit"))
    await h3.advance(10)
    await h3.publish(position(bus, "closed"))
    await h3.advance(400)
    (thread,) = dfake.threads(CHANNELS["premium"])
    assert stored["thread"] == thread["id"] == stored["root"]
    assert len(dfake.messages(int(thread["id"]))) == 3
    assert len(dfake.requests("create_thread")) == 3  # once per tier (premium, basic, free), never again
    assert [len(dfake.messages(c)) for c in CHANNELS.values()] == [1, 1, 1]
    chain = xfake.thread(xfake.tweets()[0]["id"])
    assert len(chain) == 2


async def test_thread_created_before_a_failure_is_reused(bus, make_service, live_secrets, dfake, xfake, rfake):
    h = await make_service(live_secrets, channels=["discord"])
    await h.publish(position(bus, "entry"))
    await h.advance(0)
    dfake.fail_next("send_message", "5xx", status=503)  # thread gets created, the reply fails
    await h.publish(position(bus, "stop_moved"))
    await h.advance(10)
    (thread,) = dfake.threads(CHANNELS["premium"])
    assert len(dfake.messages(int(thread["id"]))) == 1
    assert len([r for r in dfake.requests("create_thread") if r.path.split("/")[4] == str(CHANNELS["premium"])]) == 2
    assert sum(r.status == 400 for r in dfake.requests("create_thread")) == 1  # "already created" -> root id


async def test_update_waits_for_a_retrying_root(bus, make_service, live_secrets, dfake, xfake, rfake):
    dfake.fail_next("send_message", "5xx", status=503)
    h = await make_service(live_secrets, channels=["discord"])
    await h.publish(position(bus, "entry"))
    await h.run_due()  # premium root fails, retry in 2 s
    await h.publish(position(bus, "stop_moved"))  # due now, before the root's retry
    await h.advance(5)
    roots = dfake.messages(CHANNELS["premium"])
    assert len(roots) == 1 and roots[0]["embeds"][0]["title"].startswith("🟢 ENTRY")
    (thread,) = dfake.threads(CHANNELS["premium"])
    assert dfake.messages(int(thread["id"]))[0]["embeds"][0]["title"].startswith("🔁 STOP MOVED")


async def test_x_duplicate_content_means_already_posted(bus, make_service, live_secrets, dfake, xfake, rfake):
    """A re-send of a tweet that exists (X answers 403 duplicate content) is looked up, not lost."""
    h = await make_service(live_secrets, channels=["x"])
    ev = position(bus, "entry")
    await h.publish(ev)
    idem = idempotency_key("trade-1", ev.id, "x", "free")
    spec = json.loads(await bus.redis.hget(h.svc.delivery_key(idem), "spec"))
    seeded = xfake.add_tweet(spec["text"])  # e.g. posted by a run whose records were lost
    await h.advance(400)
    assert len(xfake.tweets()) == 1
    (done,) = await deliveries(bus, "delivered")
    assert done.message_id == seeded["id"]
    assert [r.status for r in xfake.requests("create_tweet")] == [403]
