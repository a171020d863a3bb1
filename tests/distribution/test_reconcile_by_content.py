"""Exactly-once after a crash now that no post carries an internal id (issue 11).

A post is recognised on the platform by its exact content (text / embed, title, parent), through
discord.py / tweepy / praw against the fakes (which, like Discord, return no nonce when reading
history back). Two things must hold on every platform:

- killed after posting an UPDATE (thread reply, X reply, Reddit comment) and before recording it,
  the next process finds it and does not post it again;
- killed after claiming but BEFORE posting, the next process must not mistake the identical-looking
  teaser of another trade (same underlying, same direction) for its own: it posts. What tells
  the two apart is the event time in the text.

Discord's nonce only dedupes a re-send inside its window (minutes); the tests restart after it
(``forget_nonces``), so the content lookup is what is under test there too.
"""

from __future__ import annotations

import pytest

from bot.distribution import idempotency_key
from core.bus.events import AuditEvent
from tests.distribution._util import CHANNELS, SUBREDDIT, deliveries, position, read_stream


class Crash(BaseException):
    """The process dies (not an Exception: nothing in the service may swallow it)."""


def kill_after_post(h, channel: str, tier: str, event: str) -> None:
    original = h.svc.outcomes.delivered

    async def dying(spec, *args, **kwargs):
        if (spec["channel"], spec["tier"], spec["event"]) == (channel, tier, event):
            raise Crash(f"killed after posting {channel}/{tier} {event}")
        return await original(spec, *args, **kwargs)

    h.svc.outcomes.delivered = dying


def kill_before_post(h, channel: str, correlation_id: str) -> None:
    sink = h.svc.sinks[channel]
    original = sink.post

    async def dying(*args, **kwargs):
        if (kwargs["meta"].correlation_id, kwargs["meta"].tier) == (correlation_id, "free"):
            raise Crash(f"killed before posting {channel} for {correlation_id}")
        return await original(*args, **kwargs)

    sink.post = dying


def updates(channel: str, dfake, xfake, rfake) -> list[dict]:
    """The platform's copies of the trade's update posts (thread messages / replies / comments)."""
    if channel == "discord":
        (thread,) = dfake.threads(CHANNELS["premium"])
        return dfake.messages(int(thread["id"]))
    if channel == "x":
        return [t for t in xfake.tweets() if t["in_reply_to_tweet_id"]]
    (sub,) = rfake.submissions(SUBREDDIT)
    return rfake.comments(sub["id"])


def roots(channel: str, dfake, xfake, rfake) -> list[dict]:
    if channel == "discord":
        return dfake.messages(CHANNELS["free"])
    if channel == "x":
        return xfake.tweets()
    return rfake.submissions(SUBREDDIT)


@pytest.mark.parametrize("channel,tier", [("discord", "premium"), ("x", "free"), ("reddit", "free")])
async def test_update_posted_before_a_crash_is_found_not_posted_again(bus, make_service, live_secrets, dfake, xfake,
                                                                      rfake, channel, tier):
    opts = {"subreddit": SUBREDDIT, "inflight_lease_s": 30, "channels": [channel]}
    h1 = await make_service(live_secrets, **opts)
    await h1.publish(position(bus, "entry"))
    await h1.advance(400)
    closed = position(bus, "closed")
    await h1.publish(closed)
    kill_after_post(h1, channel, tier, "closed")
    with pytest.raises(Crash):
        await h1.advance(400)
    await h1.svc.stop()
    assert len(updates(channel, dfake, xfake, rfake)) == 1  # it did post
    dfake.forget_nonces()  # the restart came after Discord's nonce window: only the content can tell

    h2 = await make_service(live_secrets, **opts)  # a new process, same Redis
    await h2.advance(400)
    posted = updates(channel, dfake, xfake, rfake)
    assert len(posted) == 1  # no duplicate
    idem = idempotency_key("trade-1", closed.id, channel, tier)
    audits = [a for a in await read_stream(bus, "audit") if isinstance(a, AuditEvent)
              and a.detail.get("idempotency_key") == idem and a.action == "delivery.delivered"]
    assert len(audits) == 1 and audits[0].detail["reconciled"] is True
    expected_id = posted[0]["name"] if channel == "reddit" else str(posted[0]["id"])
    assert audits[0].detail["message_id"] == expected_id


@pytest.mark.parametrize("channel", ["discord", "x", "reddit"])
async def test_killed_before_posting_does_not_take_another_trades_teaser(bus, make_service, live_secrets, dfake,
                                                                         xfake, rfake, channel):
    opts = {"subreddit": SUBREDDIT, "inflight_lease_s": 30, "channels": [channel]}
    h1 = await make_service(live_secrets, **opts)
    await h1.publish(position(bus, "entry", corr="trade-1", position_id="pos-1"))
    await h1.advance(400)
    assert len(roots(channel, dfake, xfake, rfake)) == 1
    second = position(bus, "entry", corr="trade-2", position_id="pos-2")  # same SPY calls, 400 s later
    await h1.publish(second)
    kill_before_post(h1, channel, "trade-2")
    with pytest.raises(Crash):
        await h1.advance(400)
    await h1.svc.stop()
    idem = idempotency_key("trade-2", second.id, channel, "free")
    assert (await bus.redis.hgetall(h1.svc.delivery_key(idem))).get("inflight")  # claimed, never posted

    h2 = await make_service(live_secrets, **opts)
    await h2.advance(400)
    posted = roots(channel, dfake, xfake, rfake)
    assert len(posted) == 2  # the second trade's teaser went out after all
    mine = [d for d in await deliveries(bus, "delivered") if d.correlation_id == "trade-2" and d.tier == "free"]
    assert len(mine) == 1
    ids = {p["name"] if channel == "reddit" else str(p["id"]) for p in posted}
    first = [d for d in await deliveries(bus, "delivered") if d.correlation_id == "trade-1" and d.tier == "free"]
    assert mine[0].message_id in ids and mine[0].message_id != first[0].message_id
