"""Fake X (Twitter) API v2 for tweepy, plus the client-side base-URL override.

tweepy hard-codes ``https://api.twitter.com`` in ``Client.request``; the supported
way to send its requests elsewhere is a ``requests`` transport adapter mounted on
``client.session`` that rewrites the URL just before it goes on the wire:

    point_client_at(client, fake.base_url)      # tests
    # production ("api base override"): the same three lines, see BaseURLRewriteAdapter

The adapter part (:class:`BaseURLRewriteAdapter`, :func:`point_client_at`) only
depends on ``requests`` and is written so production code can copy it verbatim.

Fake endpoints (JSON with ``Content-Type: application/json`` exactly):

- ``POST   /2/tweets``  ``{"text", "reply": {"in_reply_to_tweet_id"}}`` -> 201
  ``{"data": {"id", "text", "edit_history_tweet_ids"}}``; the same text twice from
  the same account -> 403 ``"You are not allowed to create a Tweet with duplicate
  content."``; replying to an unknown/deleted tweet -> 403; over ``max_text_len``
  weighted chars -> 403 (this last body is an approximation of X's).
- ``DELETE /2/tweets/:id`` -> ``{"data": {"deleted": true}}``
- ``GET    /2/tweets/:id``, ``GET /2/users/me``
- ``GET    /2/users/:id/tweets`` newest first; ``max_results`` (5-100),
  ``pagination_token``, ``since_id``, ``until_id``, ``exclude``, ``tweet.fields``

Faults (:meth:`FakeX.fail_next`), consumed FIFO per route kind (or ``"*"``):
``"429"`` (``x-rate-limit-remaining: 0``, ``x-rate-limit-reset`` = epoch seconds
now + ``retry_after``; tweepy raises ``TooManyRequests``), ``"5xx"`` (``status``,
default 503; tweepy raises ``TwitterServerError``, it never retries), ``"slow"``
(``delay`` s, then applied), ``"drop"`` (connection aborted; requests raises
``ConnectionError``). ``applied=True`` makes ``5xx``/``drop`` create the tweet first.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as _dt
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from aiohttp import web
from requests.adapters import HTTPAdapter
from requests.utils import should_bypass_proxies

from tests.fakes._server import FakeLifecycle, FakeServer, drop_connection

__all__ = [
    "DUPLICATE_DETAIL",
    "ROUTE_KINDS",
    "X_API_HOST",
    "BaseURLRewriteAdapter",
    "FakeX",
    "RecordedRequest",
    "point_client_at",
]

X_API_HOST = "https://api.twitter.com"


# =========================================================================== client side
# Production-copyable: depends only on `requests`.
class BaseURLRewriteAdapter(HTTPAdapter):
    """A ``requests`` adapter that sends requests for ``source`` to ``target`` instead.

    Mount it on the session for the ``source`` prefix::

        session.mount(source + "/", BaseURLRewriteAdapter(source, target))

    The rewrite happens in :meth:`send`, i.e. after auth hooks ran (OAuth 1.0a
    signatures are computed over the original ``source`` URL, which is what the
    real API would verify). Proxies picked by the session for the original host are
    dropped when the target is loopback or listed in ``NO_PROXY``.
    """

    _LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")

    def __init__(self, source: str, target: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source.rstrip("/")
        self.target = target.rstrip("/")

    def rewrite(self, url: str) -> str:
        if url == self.source or url.startswith((self.source + "/", self.source + "?")):
            return self.target + url[len(self.source) :]
        return url

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        new_url = self.rewrite(request.url or "")
        if new_url != request.url:
            request = request.copy()
            request.url = new_url
            host = requests.utils.urlparse(new_url).hostname or ""
            if host in self._LOOPBACK or should_bypass_proxies(new_url, no_proxy=None):
                kwargs["proxies"] = {}
        return super().send(request, **kwargs)


def point_client_at(client: Any, base_url: str, *, source: str = X_API_HOST) -> BaseURLRewriteAdapter:
    """Make a sync ``tweepy.Client`` (anything with a ``requests.Session`` at
    ``.session``) send its ``https://api.twitter.com`` requests to ``base_url``."""
    adapter = BaseURLRewriteAdapter(source, base_url)
    client.session.mount(source.rstrip("/") + "/", adapter)
    return adapter


# =========================================================================== fake server
# Strong references to shielded "slow" tasks: they must finish even if aiohttp cancels
# the request handler (client gone), and the loop itself only keeps weak references.
_BACKGROUND: set[asyncio.Future[Any]] = set()


def _keep(fut: asyncio.Future[Any]) -> asyncio.Future[Any]:
    _BACKGROUND.add(fut)
    fut.add_done_callback(_BACKGROUND.discard)
    return fut


ROUTE_KINDS = ("create_tweet", "delete_tweet", "get_tweet", "get_me", "get_user_tweets", "unknown")
FAULT_KINDS = ("429", "5xx", "slow", "drop")
TWITTER_EPOCH_MS = 1288834974657
DUPLICATE_DETAIL = "You are not allowed to create a Tweet with duplicate content."
REPLY_DELETED_DETAIL = "You attempted to reply to a Tweet that is deleted or not visible to you."
TOO_LONG_DETAIL = "Your Tweet text is too long."
_URL_RE = re.compile(r"https?://\S+", re.IGNORECASE)


@dataclass
class RecordedRequest:
    kind: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any = None
    fault: str | None = None
    status: int | None = None
    at: float = field(default_factory=time.time)


@dataclass
class Fault:
    kind: str
    retry_after: float = 1.0
    status: int = 503
    delay: float = 1.0
    applied: bool = False


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    hdrs = {"Content-Type": "application/json"}
    if headers:
        hdrs.update(headers)
    return web.Response(body=json.dumps(data).encode(), status=status, headers=hdrs)


def _problem(status: int, title: str, detail: str, type_: str = "about:blank", **extra: Any) -> web.Response:
    body = {"title": title, "detail": detail, "type": type_, "status": status}
    body.update(extra)
    return _json(body, status)


def _iso(ts: float) -> str:
    return (
        _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{int(ts * 1000) % 1000:03d}Z"
    )


def weighted_length(text: str) -> int:
    """Approximation of X's weighted length: URLs count 23, CJK/emoji-range chars 2."""
    n = 0
    rest = _URL_RE.sub("", text)
    n += 23 * len(_URL_RE.findall(text))
    for ch in rest:
        c = ord(ch)
        n += (
            1 if c <= 0x10FF or 0x2000 <= c <= 0x200D or 0x2010 <= c <= 0x201F or 0x2032 <= c <= 0x2037 else 2
        )
    return n


class FakeX(FakeLifecycle):
    """Stateful fake of the X API v2 subset a publisher needs (127.0.0.1:0, own thread)."""

    USER_ID = "1500000000000000001"

    def __init__(
        self, *, username: str = "quanticity", name: str = "Quanticity", max_text_len: int = 280
    ) -> None:
        self.username = username
        self.name = name
        self.max_text_len = max_text_len
        self._lock = threading.RLock()
        self._last_id = 0
        self.server = FakeServer(name="fake-x")
        self._register_routes()
        self._init_state()

    # ------------------------------------------------------------------ lifecycle

    def point(self, client: Any) -> BaseURLRewriteAdapter:
        """Shortcut for ``point_client_at(client, self.base_url)``."""
        return point_client_at(client, self.base_url)

    # ------------------------------------------------------------------ test helpers
    def _init_state(self) -> None:
        with self._lock:
            self._tweets: list[dict[str, Any]] = []  # chronological, deleted ones kept with a flag
            self._faults: dict[str, deque[Fault]] = {}
            self._requests: list[RecordedRequest] = []

    def reset(self) -> None:
        """Forget tweets, queued faults and recorded requests."""
        self._init_state()

    def tweets(self, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Tweets oldest first: ``{id, text, author_id, created_at, conversation_id,
        in_reply_to_tweet_id, deleted}`` (copies)."""
        with self._lock:
            return [copy.deepcopy(t) for t in self._tweets if include_deleted or not t["deleted"]]

    def tweet(self, tweet_id: str | int) -> dict[str, Any] | None:
        with self._lock:
            t = self._by_id(str(tweet_id))
            return copy.deepcopy(t) if t else None

    def replies_to(self, tweet_id: str | int) -> list[dict[str, Any]]:
        """Direct replies to ``tweet_id``, oldest first."""
        with self._lock:
            return [
                copy.deepcopy(t)
                for t in self._tweets
                if t["in_reply_to_tweet_id"] == str(tweet_id) and not t["deleted"]
            ]

    def thread(self, root_id: str | int) -> list[dict[str, Any]]:
        """The self-reply chain starting at ``root_id`` (root first), following the
        earliest reply at each step."""
        with self._lock:
            out = []
            cur = self._by_id(str(root_id))
            while cur is not None:
                out.append(copy.deepcopy(cur))
                nxt = [t for t in self._tweets if t["in_reply_to_tweet_id"] == cur["id"] and not t["deleted"]]
                cur = nxt[0] if nxt else None
            return out

    def add_tweet(
        self, text: str, *, in_reply_to_tweet_id: str | None = None, created_at: float | None = None
    ) -> dict[str, Any]:
        """Seed a tweet as if posted earlier (e.g. before a simulated crash)."""
        with self._lock:
            return copy.deepcopy(self._create(text, in_reply_to_tweet_id, created_at))

    def fail_next(
        self,
        route_kind: str,
        kind: str = "429",
        count: int = 1,
        *,
        retry_after: float = 1.0,
        status: int = 503,
        delay: float = 1.0,
        applied: bool = False,
    ) -> None:
        """Queue ``count`` faults for ``route_kind`` (one of :data:`ROUTE_KINDS` or ``"*"``)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, not {kind!r}")
        if route_kind != "*" and route_kind not in ROUTE_KINDS:
            raise ValueError(f"route kind must be '*' or one of {ROUTE_KINDS}, not {route_kind!r}")
        if kind == "5xx" and not 500 <= status <= 599:
            raise ValueError("status must be 5xx")
        with self._lock:
            q = self._faults.setdefault(route_kind, deque())
            for _ in range(count):
                q.append(Fault(kind, retry_after=retry_after, status=status, delay=delay, applied=applied))

    def pending_faults(self, route_kind: str | None = None) -> int:
        with self._lock:
            if route_kind is None:
                return sum(len(q) for q in self._faults.values())
            return len(self._faults.get(route_kind, ()))

    def requests(self, kind: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [copy.copy(r) for r in self._requests if kind is None or r.kind == kind]

    # ------------------------------------------------------------------ state internals
    def _next_id(self, ts: float) -> str:
        candidate = (int(ts * 1000) - TWITTER_EPOCH_MS) << 22
        self._last_id = max(candidate, self._last_id + 1)
        return str(self._last_id)

    def _by_id(self, tweet_id: str) -> dict[str, Any] | None:
        return next((t for t in self._tweets if t["id"] == tweet_id), None)

    def _create(self, text: str, reply_to: str | None, created_at: float | None = None) -> dict[str, Any]:
        ts = created_at if created_at is not None else time.time()
        tid = self._next_id(time.time())
        parent = self._by_id(reply_to) if reply_to else None
        tweet = {
            "id": tid,
            "text": text,
            "author_id": self.USER_ID,
            "created_at": _iso(ts),
            "conversation_id": parent["conversation_id"] if parent else tid,
            "in_reply_to_tweet_id": reply_to,
            "in_reply_to_user_id": parent["author_id"] if parent else None,
            "deleted": False,
        }
        self._tweets.append(tweet)
        return tweet

    def _render(self, t: dict[str, Any], fields: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"id": t["id"], "text": t["text"], "edit_history_tweet_ids": [t["id"]]}
        if "created_at" in fields:
            out["created_at"] = t["created_at"]
        if "author_id" in fields:
            out["author_id"] = t["author_id"]
        if "conversation_id" in fields:
            out["conversation_id"] = t["conversation_id"]
        if "in_reply_to_user_id" in fields and t["in_reply_to_user_id"]:
            out["in_reply_to_user_id"] = t["in_reply_to_user_id"]
        if "referenced_tweets" in fields and t["in_reply_to_tweet_id"]:
            out["referenced_tweets"] = [{"type": "replied_to", "id": t["in_reply_to_tweet_id"]}]
        if "public_metrics" in fields:
            out["public_metrics"] = {
                "retweet_count": 0,
                "reply_count": sum(
                    1 for x in self._tweets if x["in_reply_to_tweet_id"] == t["id"] and not x["deleted"]
                ),
                "like_count": 0,
                "quote_count": 0,
                "bookmark_count": 0,
                "impression_count": 0,
            }
        if "lang" in fields:
            out["lang"] = "en"
        return out

    # ------------------------------------------------------------------ routing
    def _register_routes(self) -> None:
        add = self.server.add_route
        add("POST", "/2/tweets", self._wrap("create_tweet", self._h_create))
        add("DELETE", "/2/tweets/{id:\\d+}", self._wrap("delete_tweet", self._h_delete))
        add("GET", "/2/tweets/{id:\\d+}", self._wrap("get_tweet", self._h_get_tweet))
        add("GET", "/2/users/me", self._wrap("get_me", self._h_me))
        add("GET", "/2/users/{id:\\d+}/tweets", self._wrap("get_user_tweets", self._h_user_tweets))
        add("*", "/{tail:.*}", self._wrap("unknown", self._h_unknown))

    def _wrap(self, kind: str, handler: Callable[[web.Request, RecordedRequest], web.Response]) -> Callable:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            rec = RecordedRequest(
                kind, request.method, request.path, dict(request.query), dict(request.headers), body
            )
            if body and request.headers.get("Content-Type", "").startswith("application/json"):
                try:
                    rec.json = json.loads(body)
                except ValueError:
                    rec.json = None
            with self._lock:
                self._requests.append(rec)
            fault = self._pop_fault(kind)
            if fault is not None:
                rec.fault = fault.kind
                if fault.kind == "slow":
                    resp = await asyncio.shield(
                        _keep(asyncio.ensure_future(self._slow(fault.delay, handler, request, rec)))
                    )
                    return resp
                if fault.applied:
                    self._call(handler, request, rec)
                if fault.kind == "429":
                    resp = self._too_many(fault)
                elif fault.kind == "5xx":
                    reason = {
                        500: "Internal Server Error",
                        502: "Bad Gateway",
                        503: "Service Unavailable",
                    }.get(fault.status, "Server Error")
                    resp = _problem(fault.status, reason, reason)
                else:
                    return await drop_connection(request)
            else:
                resp = self._call(handler, request, rec)
            rec.status = resp.status
            return resp

        return endpoint

    async def _slow(
        self, delay: float, handler: Callable, request: web.Request, rec: RecordedRequest
    ) -> web.Response:
        await asyncio.sleep(delay)
        resp = self._call(handler, request, rec)
        rec.status = resp.status
        return resp

    def _pop_fault(self, kind: str) -> Fault | None:
        with self._lock:
            for key in (kind, "*"):
                q = self._faults.get(key)
                if q:
                    return q.popleft()
        return None

    def _call(self, handler: Callable, request: web.Request, rec: RecordedRequest) -> web.Response:
        auth = request.headers.get("Authorization", "")
        if not (
            auth.startswith("OAuth ") or (auth.startswith("Bearer ") and auth[7:].strip() not in ("", "None"))
        ):
            return _problem(401, "Unauthorized", "Unauthorized")
        with self._lock:
            resp = handler(request, rec)
        resp.headers.update(
            {
                "x-rate-limit-limit": "300",
                "x-rate-limit-remaining": "299",
                "x-rate-limit-reset": str(int(time.time()) + 900),
            }
        )
        return resp

    def _too_many(self, fault: Fault) -> web.Response:
        resp = _problem(429, "Too Many Requests", "Too Many Requests")
        resp.headers.update(
            {
                "x-rate-limit-limit": "300",
                "x-rate-limit-remaining": "0",
                "x-rate-limit-reset": str(math.ceil(time.time() + fault.retry_after)),
            }
        )
        return resp

    # ------------------------------------------------------------------ handlers (under self._lock)
    def _h_unknown(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        return _problem(
            404,
            "Not Found Error",
            "Sorry, that page does not exist",
            "https://api.twitter.com/2/problems/not-found",
        )

    def _h_create(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        payload = rec.json if isinstance(rec.json, dict) else None
        if payload is None:
            return _problem(
                400,
                "Invalid Request",
                "One or more parameters to your request was invalid.",
                "https://api.twitter.com/2/problems/invalid-request",
            )
        text = payload.get("text")
        if not text and not payload.get("media"):
            return _problem(
                400,
                "Invalid Request",
                "One or more parameters to your request was invalid.",
                "https://api.twitter.com/2/problems/invalid-request",
                errors=[{"message": "$.text: must not be empty", "parameters": {"text": [text or ""]}}],
            )
        text = text or ""
        if weighted_length(text) > self.max_text_len:
            return _problem(403, "Forbidden", TOO_LONG_DETAIL)
        reply_to = (payload.get("reply") or {}).get("in_reply_to_tweet_id")
        if reply_to is not None:
            reply_to = str(reply_to)
            parent = self._by_id(reply_to)
            if parent is None or parent["deleted"]:
                return _problem(403, "Forbidden", REPLY_DELETED_DETAIL)
        if any(t["text"] == text and not t["deleted"] for t in self._tweets):
            return _problem(403, "Forbidden", DUPLICATE_DETAIL)
        t = self._create(text, reply_to)
        return _json({"data": {"id": t["id"], "text": t["text"], "edit_history_tweet_ids": [t["id"]]}}, 201)

    def _h_delete(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        t = self._by_id(request.match_info["id"])
        if t is None or t["deleted"]:
            return _json({"data": {"deleted": False}})
        t["deleted"] = True
        return _json({"data": {"deleted": True}})

    def _not_found(self, resource: str, value: str, parameter: str = "id") -> dict[str, Any]:
        return {
            "value": value,
            "detail": f"Could not find {resource} with {parameter}: [{value}].",
            "title": "Not Found Error",
            "resource_type": resource,
            "parameter": parameter,
            "resource_id": value,
            "type": "https://api.twitter.com/2/problems/resource-not-found",
        }

    def _h_get_tweet(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        tid = request.match_info["id"]
        t = self._by_id(tid)
        if t is None or t["deleted"]:
            return _json({"errors": [self._not_found("tweet", tid)]})
        return _json({"data": self._render(t, _fields(request))})

    def _h_me(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        data = {"id": self.USER_ID, "name": self.name, "username": self.username}
        if "created_at" in set(request.query.get("user.fields", "").split(",")):
            data["created_at"] = "2024-01-01T00:00:00.000Z"
        return _json({"data": data})

    def _h_user_tweets(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        uid = request.match_info["id"]
        if uid != self.USER_ID:
            return _json({"errors": [self._not_found("user", uid)]})
        q = request.query
        try:
            max_results = int(q.get("max_results", "10"))
        except ValueError:
            max_results = -1
        if not 5 <= max_results <= 100:
            return _problem(
                400,
                "Invalid Request",
                "One or more parameters to your request was invalid.",
                "https://api.twitter.com/2/problems/invalid-request",
                errors=[
                    {
                        "parameters": {"max_results": [q.get("max_results", "")]},
                        "message": f"The `max_results` query parameter value [{q.get('max_results')}] is not between 5 and 100",
                    }
                ],
            )
        excl = set(filter(None, q.get("exclude", "").split(",")))
        items = [t for t in reversed(self._tweets) if not t["deleted"]]
        if "replies" in excl:
            items = [t for t in items if not t["in_reply_to_tweet_id"]]
        if "since_id" in q:
            items = [t for t in items if int(t["id"]) > int(q["since_id"])]
        if "until_id" in q:
            items = [t for t in items if int(t["id"]) < int(q["until_id"])]
        if "pagination_token" in q:
            try:
                below = int(q["pagination_token"], 16)
            except ValueError:
                return _problem(
                    400, "Invalid Request", "The `pagination_token` query parameter value is not valid"
                )
            items = [t for t in items if int(t["id"]) < below]
        page, rest = items[:max_results], items[max_results:]
        fields = _fields(request)
        meta: dict[str, Any] = {"result_count": len(page)}
        body: dict[str, Any] = {}
        if page:
            body["data"] = [self._render(t, fields) for t in page]
            meta["newest_id"] = page[0]["id"]
            meta["oldest_id"] = page[-1]["id"]
            if rest:
                meta["next_token"] = format(int(page[-1]["id"]), "x")
        body["meta"] = meta
        return _json(body)


def _fields(request: web.Request) -> set[str]:
    return set(filter(None, request.query.get("tweet.fields", "").split(",")))
