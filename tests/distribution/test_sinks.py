"""The sinks on their own, through the real client libraries against the fakes."""

from __future__ import annotations

from bot.publishers.base import PostMeta, ThreadRef, ref_tag
from bot.publishers.discord_sink import DiscordSink
from bot.publishers.reddit_sink import RedditSink, ratelimit_seconds
from bot.publishers.x_sink import XSink
from tests.distribution._util import CHANNELS, SUBREDDIT

KEY = "feedfacecafebeef00112233"


async def test_discord_resend_with_the_same_nonce_returns_the_same_message(dfake):
    sink = DiscordSink("tok", {t: str(c) for t, c in CHANNELS.items()}, api_base=dfake.base_url)
    try:
        a = await sink.post(str(CHANNELS["basic"]), f"hello {ref_tag(KEY)}", idempotency_key=KEY)
        b = await sink.post(str(CHANNELS["basic"]), f"hello {ref_tag(KEY)}", idempotency_key=KEY)
        assert a.message_id == b.message_id and len(dfake.messages(CHANNELS["basic"])) == 1
        assert dfake.requests("send_message")[0].json["enforce_nonce"] is True
        found = await sink.find_existing(KEY, channel_target=str(CHANNELS["basic"]))
        assert found is not None and found.message_id == a.message_id
        # a reply goes into a thread created from the root; found there too
        r = await sink.post(str(CHANNELS["basic"]), f"update {ref_tag('aa' + KEY[2:])}",
                            reply_to=ThreadRef(a.message_id), idempotency_key="aa" + KEY[2:],
                            thread_name="SPY 590C")
        assert r.thread_id == a.message_id and r.reply_to == a.message_id
        again = await sink.find_existing("aa" + KEY[2:], channel_target=str(CHANNELS["basic"]),
                                         reply_to=ThreadRef(a.message_id))
        assert again is not None and again.message_id == r.message_id
        assert await sink.find_existing("bb" + KEY[2:], channel_target=str(CHANNELS["basic"]),
                                        reply_to=ThreadRef("1")) is None  # no such thread: nothing posted
    finally:
        await sink.close()


async def test_x_and_reddit_find_by_ref(xfake, rfake):
    x = XSink(consumer_key="a", consumer_secret="b", access_token="c", access_token_secret="d",
              api_base=xfake.base_url)
    root = await x.post("timeline", f"root {ref_tag(KEY)}", idempotency_key=KEY)
    reply = await x.post("timeline", f"reply {ref_tag('cc' + KEY[2:])}", idempotency_key="cc" + KEY[2:],
                         reply_to=ThreadRef(root.message_id, last_id=root.message_id))
    assert xfake.tweet(reply.message_id)["in_reply_to_tweet_id"] == root.message_id
    found = await x.find_existing("cc" + KEY[2:])
    assert found is not None and found.message_id == reply.message_id and found.reply_to == root.message_id
    assert await x.find_existing("dd" + KEY[2:]) is None
    await x.close()

    r = RedditSink(client_id="i", client_secret="s", username=rfake.username, password="p", subreddit=SUBREDDIT,
                   api_base=rfake.base_url)
    meta = PostMeta("reddit", "free", "entry", "c")
    sub = await r.post(SUBREDDIT, f"body {ref_tag(KEY)}", title="t", idempotency_key=KEY, meta=meta)
    com = await r.post(SUBREDDIT, f"result {ref_tag('ee' + KEY[2:])}", idempotency_key="ee" + KEY[2:],
                       reply_to=ThreadRef(sub.message_id))
    assert sub.message_id.startswith("t3_") and com.message_id.startswith("t1_")
    assert (await r.find_existing(KEY)).message_id == sub.message_id
    assert (await r.find_existing("ee" + KEY[2:], reply_to=ThreadRef(sub.message_id))).message_id == com.message_id
    assert await r.find_existing("ff" + KEY[2:]) is None


def test_reddit_ratelimit_wording():
    assert ratelimit_seconds("Take a break for 9 minutes before trying again.") == 540
    assert ratelimit_seconds("try again in 30 seconds") == 30
    assert ratelimit_seconds("Take a break for 500 milliseconds") == 1.0
    assert ratelimit_seconds("no number") is None
