"""The sinks on their own, through the real client libraries against the fakes."""

from __future__ import annotations

from bot.publishers.base import Payload, PostMeta, ThreadRef
from bot.publishers.discord_sink import DiscordSink
from bot.publishers.reddit_sink import RedditSink, ratelimit_seconds
from bot.publishers.x_sink import XSink
from tests.distribution._util import CHANNELS, SUBREDDIT

KEY = "feedfacecafebeef00112233"


async def test_discord_resend_with_the_same_nonce_returns_the_same_message(dfake):
    sink = DiscordSink("tok", {t: str(c) for t, c in CHANNELS.items()}, api_base=dfake.base_url)
    basic = str(CHANNELS["basic"])
    try:
        a = await sink.post(basic, "hello", idempotency_key=KEY)
        b = await sink.post(basic, "hello", idempotency_key=KEY)
        assert a.message_id == b.message_id and len(dfake.messages(CHANNELS["basic"])) == 1
        assert dfake.requests("send_message")[0].json["enforce_nonce"] is True
        # history carries no nonce (as on Discord): found by its exact content, not by anything else
        found = await sink.find_existing(KEY, channel_target=basic, expected=Payload("hello"))
        assert found is not None and found.message_id == a.message_id
        assert await sink.find_existing(KEY, channel_target=basic, expected=Payload("hello!")) is None
        assert await sink.find_existing(KEY, channel_target=basic) is None
        # a reply goes into a thread created from the root; found there too
        r = await sink.post(basic, "update", reply_to=ThreadRef(a.message_id), idempotency_key="aa" + KEY[2:],
                            thread_name="SPY 590C")
        assert r.thread_id == a.message_id and r.reply_to == a.message_id
        again = await sink.find_existing("aa" + KEY[2:], channel_target=basic, reply_to=ThreadRef(a.message_id),
                                         expected=Payload("update"))
        assert again is not None and again.message_id == r.message_id
        assert await sink.find_existing("aa" + KEY[2:], channel_target=basic,  # in the channel, not the thread
                                        expected=Payload("update")) is None
        assert await sink.find_existing("bb" + KEY[2:], channel_target=basic, reply_to=ThreadRef("1"),
                                        expected=Payload("update")) is None  # no such thread: nothing posted
        # an embed is recognised by its title, description and footer
        embed = {"title": "ENTRY SPY", "description": "why", "footer": {"text": "Quanticity premium · 10:31"}}
        e = await sink.post(basic, "ENTRY SPY", embed, idempotency_key="cc" + KEY[2:])
        hit = await sink.find_existing("cc" + KEY[2:], channel_target=basic, expected=Payload("ENTRY SPY", embed))
        assert hit is not None and hit.message_id == e.message_id
        other = dict(embed, footer={"text": "Quanticity premium · 10:32"})
        assert await sink.find_existing("cc" + KEY[2:], channel_target=basic,
                                        expected=Payload("ENTRY SPY", other)) is None
    finally:
        await sink.close()


async def test_x_and_reddit_find_by_exact_content(xfake, rfake):
    x = XSink(consumer_key="a", consumer_secret="b", access_token="c", access_token_secret="d",
              api_base=xfake.base_url)
    root = await x.post("timeline", "root at 10:31:07", idempotency_key=KEY)
    reply = await x.post("timeline", "reply & more: https://example.test/a.html", idempotency_key="cc" + KEY[2:],
                         reply_to=ThreadRef(root.message_id, last_id=root.message_id))
    assert xfake.tweet(reply.message_id)["in_reply_to_tweet_id"] == root.message_id
    chain = ThreadRef(root.message_id, last_id=root.message_id)
    found = await x.find_existing("cc" + KEY[2:], reply_to=chain,
                                  expected=Payload("reply & more: https://example.test/a.html"))
    assert found is not None and found.message_id == reply.message_id and found.reply_to == root.message_id
    assert (await x.find_existing(KEY, expected=Payload("root at 10:31:07"))).message_id == root.message_id
    assert await x.find_existing(KEY, expected=Payload("root at 10:31:08")) is None
    # the same text under another parent (or as a root) is not this delivery
    assert await x.find_existing("cc" + KEY[2:], expected=Payload("reply & more: https://example.test/a.html")) is None
    await x.close()

    r = RedditSink(client_id="i", client_secret="s", username=rfake.username, password="p", subreddit=SUBREDDIT,
                   api_base=rfake.base_url)
    meta = PostMeta("reddit", "free", "entry", "c")
    sub = await r.post(SUBREDDIT, "body 10:31:07", title="t", idempotency_key=KEY, meta=meta)
    com = await r.post(SUBREDDIT, "result 11:02:13", idempotency_key="ee" + KEY[2:],
                       reply_to=ThreadRef(sub.message_id))
    assert sub.message_id.startswith("t3_") and com.message_id.startswith("t1_")
    assert (await r.find_existing(KEY, expected=Payload("body 10:31:07", title="t"))).message_id == sub.message_id
    assert await r.find_existing(KEY, expected=Payload("body 10:31:07", title="other title")) is None
    assert (await r.find_existing("ee" + KEY[2:], reply_to=ThreadRef(sub.message_id),
                                  expected=Payload("result 11:02:13"))).message_id == com.message_id
    assert await r.find_existing("ee" + KEY[2:], reply_to=ThreadRef("t3_zzzzz"),
                                 expected=Payload("result 11:02:13")) is None
    assert await r.find_existing("ff" + KEY[2:], expected=Payload("never posted", title="t")) is None


def test_reddit_ratelimit_wording():
    assert ratelimit_seconds("Take a break for 9 minutes before trying again.") == 540
    assert ratelimit_seconds("try again in 30 seconds") == 30
    assert ratelimit_seconds("Take a break for 500 milliseconds") == 1.0
    assert ratelimit_seconds("no number") is None
