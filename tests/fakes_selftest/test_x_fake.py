"""The X fake, driven through the real sync tweepy.Client (blocking: via asyncio.to_thread
where a test is async, so the event loop is never blocked)."""

from __future__ import annotations

import asyncio
import time

import pytest
import requests
import tweepy

from tests.fakes.x_api import DUPLICATE_DETAIL, BaseURLRewriteAdapter, FakeX, point_client_at


@pytest.fixture(scope="session")
def x_fake() -> FakeX:
    return FakeX.shared()


@pytest.fixture
def fake(x_fake: FakeX) -> FakeX:
    x_fake.reset()
    return x_fake


@pytest.fixture
def client(fake: FakeX) -> tweepy.Client:
    c = tweepy.Client(
        consumer_key="ck",
        consumer_secret="cs",
        access_token="at",
        access_token_secret="ats",
        wait_on_rate_limit=False,
    )
    point_client_at(c, fake.base_url)
    return c


def test_adapter_rewrites_only_the_api_host() -> None:
    a = BaseURLRewriteAdapter("https://api.twitter.com", "http://127.0.0.1:9/x/")
    assert a.rewrite("https://api.twitter.com/2/tweets?x=1") == "http://127.0.0.1:9/x/2/tweets?x=1"
    assert a.rewrite("https://api.twitter.com.evil.com/2") == "https://api.twitter.com.evil.com/2"
    assert a.rewrite("https://upload.twitter.com/1.1/media") == "https://upload.twitter.com/1.1/media"


def test_create_tweet_and_get_me(client: tweepy.Client, fake: FakeX) -> None:
    me = client.get_me()
    assert me.data.id == int(FakeX.USER_ID) and me.data.username == "quanticity"
    resp = client.create_tweet(text="SPY 450C opened")
    assert resp.data["text"] == "SPY 450C opened"
    assert resp.data["edit_history_tweet_ids"] == [resp.data["id"]]
    assert [t["text"] for t in fake.tweets()] == ["SPY 450C opened"]
    rec = fake.requests("create_tweet")[0]
    assert rec.json == {"text": "SPY 450C opened"} and rec.headers["Authorization"].startswith("OAuth ")
    assert rec.status == 201


async def test_reply_chain_and_reconciliation_read(client: tweepy.Client, fake: FakeX) -> None:
    root = await asyncio.to_thread(client.create_tweet, text="Thread 1/3")
    r1 = await asyncio.to_thread(client.create_tweet, text="2/3", in_reply_to_tweet_id=root.data["id"])
    r2 = await asyncio.to_thread(client.create_tweet, text="3/3", in_reply_to_tweet_id=r1.data["id"])
    assert [t["text"] for t in fake.replies_to(root.data["id"])] == ["2/3"]
    assert [t["id"] for t in fake.thread(root.data["id"])] == [root.data["id"], r1.data["id"], r2.data["id"]]
    assert fake.requests("create_tweet")[1].json["reply"] == {"in_reply_to_tweet_id": root.data["id"]}
    # reconciliation after a crash: recent tweets of the account, newest first
    page = await asyncio.to_thread(
        client.get_users_tweets,
        FakeX.USER_ID,
        max_results=5,
        tweet_fields=["created_at", "conversation_id", "referenced_tweets"],
        user_auth=True,
    )
    assert [t.text for t in page.data] == ["3/3", "2/3", "Thread 1/3"]
    assert page.data[0].conversation_id == int(root.data["id"])
    assert page.data[0].referenced_tweets[0].id == int(r1.data["id"])
    assert page.meta["result_count"] == 3 and "next_token" not in page.meta


def test_pagination(client: tweepy.Client, fake: FakeX) -> None:
    for i in range(7):
        fake.add_tweet(f"seed {i}")
    p1 = client.get_users_tweets(FakeX.USER_ID, max_results=5, user_auth=True)
    p2 = client.get_users_tweets(
        FakeX.USER_ID, max_results=5, pagination_token=p1.meta["next_token"], user_auth=True
    )
    assert [t.text for t in p1.data + p2.data] == [f"seed {i}" for i in range(6, -1, -1)]
    assert "next_token" not in p2.meta
    with pytest.raises(tweepy.BadRequest):
        client.get_users_tweets(FakeX.USER_ID, max_results=200, user_auth=True)


def test_duplicate_content_is_403(client: tweepy.Client, fake: FakeX) -> None:
    client.create_tweet(text="same words")
    with pytest.raises(tweepy.Forbidden) as exc:
        client.create_tweet(text="same words")
    assert exc.value.api_messages == [DUPLICATE_DETAIL]
    assert len(fake.tweets()) == 1
    with pytest.raises(tweepy.Forbidden):
        client.create_tweet(text="reply to nothing", in_reply_to_tweet_id="123")
    with pytest.raises(tweepy.Forbidden):
        client.create_tweet(text="x" * 281)


def test_429_raises_too_many_requests(client: tweepy.Client, fake: FakeX) -> None:
    fake.fail_next("create_tweet", "429", retry_after=30)
    with pytest.raises(tweepy.TooManyRequests) as exc:
        client.create_tweet(text="rate limited")
    assert exc.value.response.headers["x-rate-limit-remaining"] == "0"
    reset = int(exc.value.response.headers["x-rate-limit-reset"])
    assert time.time() + 25 < reset <= time.time() + 31
    assert fake.tweets() == []
    assert client.create_tweet(text="rate limited").data["text"] == "rate limited"


def test_5xx_drop_and_slow(client: tweepy.Client, fake: FakeX) -> None:
    fake.fail_next("create_tweet", "5xx", status=503)
    with pytest.raises(tweepy.TwitterServerError):
        client.create_tweet(text="five oh three")
    assert fake.tweets() == []
    # posted, but the answer was lost: the retry hits the duplicate guard
    fake.fail_next("create_tweet", "drop", applied=True)
    with pytest.raises(requests.ConnectionError):
        client.create_tweet(text="lost answer")
    assert [t["text"] for t in fake.tweets()] == ["lost answer"]
    with pytest.raises(tweepy.Forbidden):
        client.create_tweet(text="lost answer")
    # slow: the client's timeout fires, the tweet lands anyway
    fake.fail_next("create_tweet", "slow", delay=0.5)
    session_request = client.session.request
    client.session.request = lambda *a, **kw: session_request(*a, timeout=0.2, **kw)  # type: ignore[method-assign]
    with pytest.raises(requests.Timeout):
        client.create_tweet(text="slow one")
    time.sleep(0.5)
    assert fake.tweets()[-1]["text"] == "slow one"


def test_missing_auth_is_401(fake: FakeX) -> None:
    c = tweepy.Client(bearer_token=None)
    point_client_at(c, fake.base_url)
    with pytest.raises(tweepy.Unauthorized):
        c.get_users_tweets(FakeX.USER_ID)
