"""Reddit through praw (sync), called via ``asyncio.to_thread``.

- Script app, password grant. ``oauth_url``/``reddit_url`` from ``REDDIT_API_BASE``
  when given; ``check_for_updates=False``, ``check_for_async=False``; no praw.ini.
- One submission per trade (the free-tier teaser) in ``settings.distribution.subreddit``;
  the result is a comment on it. Reports are submissions of their own.
- Rate limits: praw's own sleeping on ``RATELIMIT`` is disabled (``ratelimit_seconds=0``);
  ``RATELIMIT`` ("take a break for N minutes") and HTTP 429 become
  ``PublishError(rate_limited, retry_after)`` and the scheduler waits.
- prawcore retries 5xx / connection errors up to twice, POSTs included, which
  duplicates a post whose answer was lost. Those retries are switched off here
  (the scheduler retries after reconciling instead).
- Exactly-once without any internal id in the post: ``find_existing`` scans the
  account's recent submissions for the delivery's exact title and body (roots), or
  its recent comments for the exact body under the same submission (updates).
  Decision: exact content, not an invisible marker such as ``[](#q-<hash>)``. A
  marker is invisible only where the markdown renderer drops empty links (old
  Reddit); the new-Reddit rich-text view, the apps, mod tools, e-mail notifications
  and the API hand the raw markdown to readers, so a hash would still be an internal
  code that subscribers see. The exact text is unique on its own: a position text
  carries its event's time to the second, a report post its report and date.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import praw
import prawcore
from praw.exceptions import RedditAPIException
from prawcore.sessions import FiniteRetryStrategy

from bot.publishers.base import (
    Payload,
    PostMeta,
    PostResult,
    PublishError,
    SerialThreadCaller,
    Sink,
    ThreadRef,
    same_text,
)

_RATELIMIT = re.compile(r"([0-9]{1,4}) (milliseconds?|seconds?|minutes?)")


@dataclass(frozen=True)
class _NoRetry(FiniteRetryStrategy):
    """prawcore retry strategy: no retries, no sleeping."""

    retries: int = 0

    def _sleep_seconds(self) -> float | None:
        return None


def ratelimit_seconds(message: str) -> float | None:
    m = _RATELIMIT.search(message or "")
    if not m:
        return None
    n = float(m.group(1))
    unit = m.group(2)
    if unit.startswith("minute"):
        return n * 60
    if unit.startswith("millisecond"):
        return max(1.0, n / 1000)
    return n


def map_error(exc: BaseException) -> PublishError:
    if isinstance(exc, PublishError):
        return exc
    if isinstance(exc, RedditAPIException):
        for item in exc.items:
            if item.error_type == "RATELIMIT":
                return PublishError("reddit RATELIMIT", rate_limited=True,
                                    retry_after=ratelimit_seconds(item.message or ""))
        codes = ",".join(str(i.error_type) for i in exc.items)
        return PublishError(f"reddit rejected: {codes}", permanent=True)
    if isinstance(exc, prawcore.TooManyRequests):
        headers = exc.response.headers
        retry: float | None = None
        for name in ("retry-after", "x-ratelimit-reset"):
            try:
                if headers.get(name):
                    retry = float(headers[name])
                    break
            except ValueError:
                continue
        return PublishError("reddit 429 rate limited", rate_limited=True, retry_after=retry)
    if isinstance(exc, prawcore.ServerError):
        return PublishError(f"reddit server error {exc.response.status_code}", ambiguous=True)
    if isinstance(exc, prawcore.RequestException):
        return PublishError(f"reddit connection: {type(exc.original_exception).__name__}", ambiguous=True)
    if isinstance(exc, (prawcore.OAuthException, prawcore.InvalidToken, prawcore.Forbidden,
                        prawcore.ResponseException)):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (400, 404, 413, 414):
            return PublishError(f"reddit rejected: HTTP {status}", permanent=True)
        return PublishError(f"reddit auth/response error: {type(exc).__name__}")
    return PublishError(f"reddit: {type(exc).__name__}", ambiguous=True)


def _title(title: str | None) -> str:
    """The submission title as posted (and so as looked for)."""
    return (title or "Quanticity")[:300]


class RedditSink(Sink):
    channel = "reddit"

    def __init__(self, *, client_id: str, client_secret: str, username: str, password: str, subreddit: str,
                 api_base: str | None = None, timeout_s: float = 20.0, scan_limit: int = 100,
                 user_agent: str | None = None) -> None:
        kwargs: dict[str, Any] = {
            "client_id": client_id, "client_secret": client_secret, "username": username, "password": password,
            "user_agent": user_agent or f"quanticity/0.1 (by u/{username})",
            "check_for_updates": False, "check_for_async": False, "ratelimit_seconds": 0,
            "timeout": max(1, int(timeout_s)),
        }
        if api_base:
            kwargs["oauth_url"] = api_base.rstrip("/")
            kwargs["reddit_url"] = api_base.rstrip("/")
        self.reddit = praw.Reddit(**kwargs)
        for core in (getattr(self.reddit, "_core", None), getattr(self.reddit, "_authorized_core", None),
                     getattr(self.reddit, "_read_only_core", None)):
            if core is not None and hasattr(core, "_retry_strategy_class"):
                core._retry_strategy_class = _NoRetry
        self.username = username
        self.subreddit = subreddit
        self._call = SerialThreadCaller()
        self.scan_limit = scan_limit

    def target_for(self, channel: str, tier: str) -> str | None:
        return self.subreddit if tier == "free" else None

    def _post_sync(self, target: str, title: str, text: str, root: str | None) -> PostResult:
        if root is None:
            sub = self.reddit.subreddit(target).submit(title=_title(title), selftext=text)
            return PostResult(sub.fullname)
        parent = self.reddit.submission(id=root.removeprefix("t3_"))
        comment = parent.reply(body=text)
        if comment is None:
            raise PublishError("reddit comment returned nothing", ambiguous=True)
        return PostResult(comment.fullname, reply_to=root)

    async def post(self, channel_target: str, text: str, embed: dict[str, Any] | None = None, *,
                   reply_to: ThreadRef | None = None, idempotency_key: str, title: str | None = None,
                   thread_name: str | None = None, meta: PostMeta | None = None,
                   attachment: str | None = None) -> PostResult:
        root = reply_to.root_id if reply_to is not None else None
        try:
            return await self._call(self._post_sync, channel_target, title, text, root)
        except Exception as exc:  # noqa: BLE001
            raise map_error(exc) from None

    def _find_sync(self, expected: Payload, root: str | None) -> PostResult | None:
        me = self.reddit.redditor(self.username)
        if root is None:
            title = _title(expected.title)
            for s in me.submissions.new(limit=self.scan_limit):
                if same_text(s.title, title) and same_text(s.selftext or "", expected.text):
                    return PostResult(s.fullname)
            return None
        for c in me.comments.new(limit=self.scan_limit):
            if c.parent_id == root and same_text(c.body or "", expected.text):
                return PostResult(c.fullname, reply_to=root)
        return None

    async def find_existing(self, idempotency_key: str, *, channel_target: str | None = None,
                            reply_to: ThreadRef | None = None, meta: PostMeta | None = None,
                            expected: Payload | None = None) -> PostResult | None:
        if expected is None:
            return None  # nothing to recognise it by
        root = reply_to.root_id if reply_to is not None else None
        try:
            return await self._call(self._find_sync, expected, root)
        except Exception as exc:  # noqa: BLE001
            raise map_error(exc) from None
