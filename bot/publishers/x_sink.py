"""X (Twitter) API v2 through tweepy's sync ``Client``, called via ``asyncio.to_thread``.

- User-context auth (OAuth 1.0a: consumer key/secret + access token/secret).
- ``wait_on_rate_limit`` is off: a 429 becomes ``PublishError(rate_limited,
  retry_after = x-rate-limit-reset - the response's Date)`` and the scheduler waits.
- API base override (``X_API_BASE``): tweepy hard-codes ``https://api.twitter.com``;
  a ``requests`` adapter mounted on ``client.session`` rewrites the URL just before
  sending (OAuth signatures are computed over the original URL). The adapter also
  gives every request a timeout (tweepy sets none).
- Threads: each update replies to the LAST tweet of the chain (X shows a thread as
  a chain of self-replies), ``ThreadRef.last_id``.
- Exactly-once without any internal id in the text: ``find_existing`` scans the
  account's recent tweets (``GET /2/users/:id/tweets``) for the exact text of the
  delivery (:func:`same_text`: X hands back ``&amp;`` and t.co links) replying to the
  same parent (none for a root). X refuses a status identical to a recent one (403
  "duplicate content"): on a post that answer means it is already there, and it is
  looked up the same way. Two teasers of two trades never share a text: each carries
  its event's time to the second (see the templates).
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Any

import requests
import tweepy
from requests.adapters import HTTPAdapter
from requests.utils import should_bypass_proxies, urlparse

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

X_API_HOST = "https://api.twitter.com"
DUPLICATE = "duplicate content"


class RewriteAdapter(HTTPAdapter):
    """Send requests for ``source`` to ``target`` (None = unchanged) with a default timeout."""

    _LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")

    def __init__(self, source: str, target: str | None, timeout_s: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source.rstrip("/")
        self.target = target.rstrip("/") if target else None
        self.timeout_s = timeout_s

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout_s
        url = request.url or ""
        if self.target and (url == self.source or url.startswith(self.source + "/")):
            request = request.copy()
            request.url = self.target + url[len(self.source):]
            host = urlparse(request.url).hostname or ""
            if host in self._LOOPBACK or should_bypass_proxies(request.url, no_proxy=None):
                kwargs["proxies"] = {}
        return super().send(request, **kwargs)


def _retry_after(exc: tweepy.TooManyRequests) -> float | None:
    reset = getattr(exc, "reset_time", None)
    if reset is None:
        return None
    date = exc.response.headers.get("Date") if exc.response is not None else None
    try:
        now = parsedate_to_datetime(date).timestamp() if date else None
    except (TypeError, ValueError):
        now = None
    if now is None:
        return None  # the scheduler's backoff applies
    return max(1.0, float(reset) - now)


def map_error(exc: BaseException) -> PublishError:
    if isinstance(exc, PublishError):
        return exc
    if isinstance(exc, tweepy.TooManyRequests):
        return PublishError("x 429 rate limited", rate_limited=True, retry_after=_retry_after(exc))
    if isinstance(exc, tweepy.TwitterServerError):
        return PublishError(f"x server error: {str(exc)[:200]}", ambiguous=True)
    if isinstance(exc, (tweepy.BadRequest, tweepy.Forbidden, tweepy.NotFound)):
        return PublishError(f"x rejected: {str(exc)[:200]}", permanent=True)
    if isinstance(exc, tweepy.Unauthorized):
        return PublishError("x 401 unauthorized (check X_* credentials)")
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return PublishError(f"x connection: {type(exc).__name__}", ambiguous=True)
    if isinstance(exc, tweepy.HTTPException):
        return PublishError(f"x error: {str(exc)[:200]}")
    return PublishError(f"x: {type(exc).__name__}", ambiguous=True)


def _parent(reply_to: ThreadRef | None) -> str | None:
    """The tweet an update replies to: the chain's last one (None for a root)."""
    return (reply_to.last_id or reply_to.root_id) if reply_to is not None else None


class XSink(Sink):
    channel = "x"

    def __init__(self, *, consumer_key: str, consumer_secret: str, access_token: str, access_token_secret: str,
                 api_base: str | None = None, timeout_s: float = 20.0, scan_limit: int = 100) -> None:
        self.client = tweepy.Client(consumer_key=consumer_key, consumer_secret=consumer_secret,
                                    access_token=access_token, access_token_secret=access_token_secret,
                                    wait_on_rate_limit=False)
        self.client.session.mount(X_API_HOST + "/", RewriteAdapter(X_API_HOST, api_base, timeout_s))
        self._call = SerialThreadCaller()
        self.scan_limit = max(5, min(100, scan_limit))
        self._user_id: str | None = None

    def target_for(self, channel: str, tier: str) -> str | None:
        return "timeline" if tier == "free" else None

    def _post_sync(self, text: str, parent: str | None) -> PostResult:
        resp = self.client.create_tweet(text=text, in_reply_to_tweet_id=parent, user_auth=True)
        return PostResult(str(resp.data["id"]), reply_to=parent)

    async def post(self, channel_target: str, text: str, embed: dict[str, Any] | None = None, *,
                   reply_to: ThreadRef | None = None, idempotency_key: str, title: str | None = None,
                   thread_name: str | None = None, meta: PostMeta | None = None,
                   attachment: str | None = None) -> PostResult:
        parent = _parent(reply_to)
        try:
            return await self._call(self._post_sync, text, parent)
        except tweepy.Forbidden as exc:
            if DUPLICATE in str(exc).lower():  # X refuses a repeat of a recent status: ours is already there
                found = await self.find_existing(idempotency_key, reply_to=reply_to, expected=Payload(text))
                if found is not None:
                    return found
            raise map_error(exc) from None
        except Exception as exc:  # noqa: BLE001
            raise map_error(exc) from None

    def _find_sync(self, text: str, parent: str | None) -> PostResult | None:
        if self._user_id is None:
            me = self.client.get_me(user_auth=True)
            self._user_id = str(me.data["id"])
        resp = self.client.get_users_tweets(self._user_id, max_results=self.scan_limit, user_auth=True,
                                            tweet_fields=["referenced_tweets"])
        for tweet in resp.data or []:  # newest first
            replied_to = None
            for ref in tweet.referenced_tweets or []:
                if getattr(ref, "type", None) == "replied_to":
                    replied_to = str(ref.id)
            if replied_to == parent and same_text(tweet.text, text):
                return PostResult(str(tweet.id), reply_to=replied_to)
        return None

    async def find_existing(self, idempotency_key: str, *, channel_target: str | None = None,
                            reply_to: ThreadRef | None = None, meta: PostMeta | None = None,
                            expected: Payload | None = None) -> PostResult | None:
        if expected is None:
            return None  # nothing to recognise it by
        try:
            return await self._call(self._find_sync, expected.text, _parent(reply_to))
        except Exception as exc:  # noqa: BLE001
            raise map_error(exc) from None

    async def close(self) -> None:
        self.client.session.close()
