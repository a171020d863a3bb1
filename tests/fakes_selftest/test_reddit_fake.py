"""The Reddit fake, driven through the real praw (blocking: via asyncio.to_thread where a
test is async)."""

from __future__ import annotations

import asyncio

import praw
import prawcore
import pytest
from praw.exceptions import RedditAPIException

from tests.fakes.reddit_api import FakeReddit


@pytest.fixture(scope="session")
def reddit_fake() -> FakeReddit:
    return FakeReddit.shared()


@pytest.fixture
def fake(reddit_fake: FakeReddit) -> FakeReddit:
    reddit_fake.reset()
    return reddit_fake


@pytest.fixture
def reddit(fake: FakeReddit) -> praw.Reddit:
    return praw.Reddit(
        client_id="cid",
        client_secret="secret",
        username=fake.username,
        password="pw",
        user_agent="quanticity-tests/0.1",
        oauth_url=fake.base_url,
        reddit_url=fake.base_url,
        check_for_updates=False,
        check_for_async=False,
    )


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """prawcore sleeps 2-4 s then 0-2 s between its retries; keep the suite fast."""
    orig = prawcore.sessions.FiniteRetryStrategy._sleep_seconds
    monkeypatch.setattr(
        prawcore.sessions.FiniteRetryStrategy,
        "_sleep_seconds",
        lambda self: None if orig(self) is None else 0.01,
    )


def test_token_me_submit_and_comment(reddit: praw.Reddit, fake: FakeReddit) -> None:
    me = reddit.user.me()
    assert me.name == fake.username
    tok = fake.requests("access_token")[0]
    assert tok.form["grant_type"] == "password" and tok.form["username"] == fake.username
    assert tok.headers["Authorization"].startswith("Basic ")

    sub = reddit.subreddit("quanticity").submit("Daily recap", selftext="**+1.2%** today")
    assert sub.id == fake.submissions()[0]["id"]
    form = fake.requests("submit")[0].form
    assert form["kind"] == "self" and form["sr"] == "quanticity" and form["text"] == "**+1.2%** today"
    assert form["api_type"] == "json"

    c1 = sub.reply("Details: SPY 450C +35")
    assert isinstance(c1, praw.models.Comment) and c1.body == "Details: SPY 450C +35"
    c2 = c1.reply("More details")
    assert c2.parent_id == f"t1_{c1.id}"
    assert [c["body"] for c in fake.comments(sub.id)] == ["Details: SPY 450C +35", "More details"]
    assert fake.requests("comment")[0].form["thing_id"] == f"t3_{sub.id}"

    # lazy attributes fetch GET /comments/{id}/ ; the comment tree comes back nested
    fresh = reddit.submission(sub.id)
    assert fresh.title == "Daily recap" and fresh.selftext == "**+1.2%** today" and fresh.num_comments == 2
    top = fresh.comments[0]
    assert top.body == "Details: SPY 450C +35" and top.replies[0].body == "More details"
    assert reddit.comment(c2.id).body == "More details"  # GET /api/info/


async def test_reconciliation_listing(reddit: praw.Reddit, fake: FakeReddit) -> None:
    fake.add_submission("seed 0", "x", "quanticity")
    for i in (1, 2, 3):
        await asyncio.to_thread(reddit.subreddit("quanticity").submit, f"post {i}", selftext="body")

    def recent(limit: int) -> list[str]:
        return [s.title for s in reddit.redditor(fake.username).submissions.new(limit=limit)]

    assert await asyncio.to_thread(recent, 3) == ["post 3", "post 2", "post 1"]
    assert await asyncio.to_thread(recent, 100) == ["post 3", "post 2", "post 1", "seed 0"]
    path = fake.requests("user_submitted")[0]
    assert path.query["sort"] == "new"


def test_validation_errors_raise_reddit_api_exception(reddit: praw.Reddit, fake: FakeReddit) -> None:
    with pytest.raises(RedditAPIException) as exc:
        reddit.subreddit("quanticity").submit("t" * 301, selftext="x")
    assert exc.value.items[0].error_type == "TOO_LONG"
    assert fake.submissions() == []


def test_ratelimit_error(reddit: praw.Reddit, fake: FakeReddit) -> None:
    fake.fail_next("submit", "ratelimit", retry_after=540)
    with pytest.raises(RedditAPIException) as exc:
        reddit.subreddit("quanticity").submit("Daily recap", selftext="x")
    item = exc.value.items[0]
    assert item.error_type == "RATELIMIT" and "9 minutes" in item.message
    assert fake.submissions() == []
    # a short RATELIMIT (<= praw's ratelimit_seconds) is slept through and retried by praw
    fake.fail_next("comment", "ratelimit", retry_after=0.005)
    sub = reddit.subreddit("quanticity").submit("Daily recap", selftext="x")
    assert sub.reply("after a short break").body == "after a short break"
    assert [r.fault for r in fake.requests("comment")] == ["ratelimit", None]


def test_http_429(reddit: praw.Reddit, fake: FakeReddit) -> None:
    reddit.user.me()
    fake.fail_next("submit", "429", retry_after=1)
    with pytest.raises(prawcore.exceptions.TooManyRequests):
        reddit.subreddit("quanticity").submit("x", selftext="y")
    assert fake.submissions() == []


def test_5xx(reddit: praw.Reddit, fake: FakeReddit, fast_retries: None) -> None:
    fake.fail_next("submit", "5xx", count=3, status=503)
    with pytest.raises(prawcore.exceptions.ServerError):
        reddit.subreddit("quanticity").submit("x", selftext="y")
    assert len(fake.requests("submit")) == 3  # prawcore tried 3 times
    assert fake.submissions() == []
    # one 500 is retried transparently ...
    fake.fail_next("submit", "5xx", status=500)
    assert reddit.subreddit("quanticity").submit("retried", selftext="y").id
    # ... and when the first attempt had been applied, the retry duplicates the post
    fake.fail_next("submit", "5xx", status=502, applied=True)
    reddit.subreddit("quanticity").submit("twice", selftext="y")
    assert [s["title"] for s in fake.submissions()] == ["retried", "twice", "twice"]


def test_drop_and_token_expiry(reddit: praw.Reddit, fake: FakeReddit, fast_retries: None) -> None:
    fake.fail_next("submit", "drop", count=3)
    with pytest.raises(prawcore.exceptions.RequestException):
        reddit.subreddit("quanticity").submit("x", selftext="y")
    assert fake.submissions() == []
    fake.expire_tokens()
    reddit.subreddit("quanticity").submit("after re-auth", selftext="y")
    assert len(fake.requests("access_token")) == 2
    assert [r.status for r in fake.requests("submit")][-2:] == [401, 200]


def test_wrong_password(fake: FakeReddit) -> None:
    strict = FakeReddit(password="right")
    with strict:
        r = praw.Reddit(**strict.praw_kwargs(password="wrong"))
        with pytest.raises(prawcore.exceptions.OAuthException):
            r.user.me()
        assert praw.Reddit(**strict.praw_kwargs()).user.me().name == strict.username
