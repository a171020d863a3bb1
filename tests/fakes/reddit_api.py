"""Fake Reddit API for praw (script app, password grant).

Point praw at it with (no praw.ini involved)::

    praw.Reddit(client_id=..., client_secret=..., username=..., password=...,
                user_agent="quanticity-tests", oauth_url=fake.base_url,
                reddit_url=fake.base_url, check_for_updates=False, check_for_async=False)

Endpoints (JSON, ``Content-Type: application/json`` exactly; trailing slash optional):

- ``POST /api/v1/access_token``  password grant, HTTP basic client auth ->
  ``{"access_token", "token_type": "bearer", "expires_in", "scope"}``; a wrong
  password answers 200 ``{"error": "invalid_grant"}`` (prawcore ``OAuthException``),
  a wrong client 401, like Reddit.
- ``GET  /api/v1/me``                          (``reddit.user.me()``)
- ``POST /api/submit/`` kind=self|link, sr, title, text|url ->
  ``{"json": {"errors": [], "data": {"url", "drafts_count", "id", "name"}}}``
- ``POST /api/comment/`` thing_id (t3_/t1_), text ->
  ``{"json": {"errors": [], "data": {"things": [{"kind": "t1", "data": {...}}]}}}``
- ``POST /api/del/`` id
- ``GET  /comments/{id}/``                     (lazy ``Submission`` attribute fetch)
- ``GET  /api/info/?id=t3_x,t1_y``              (``reddit.info``, lazy ``Comment``)
- ``GET  /user/{name}/submitted``, ``/user/{name}/comments``, ``/user/{name}/about``,
  ``GET  /r/{sr}/new``  listings newest first with ``limit``/``after``/``before``

Validation errors come back Reddit-style in ``json.errors`` (``[[code, message, field]]``),
which praw turns into ``praw.exceptions.RedditAPIException``.

Faults (:meth:`FakeReddit.fail_next`), consumed FIFO per route kind (or ``"*"``):
``"429"`` (HTTP 429 + ``x-ratelimit-remaining: 0`` -> prawcore ``TooManyRequests``),
``"ratelimit"`` (HTTP 200 with a ``RATELIMIT`` entry in ``json.errors``, "Take a break
for N minutes" -> ``RedditAPIException``; praw itself sleeps and retries when N is at
most its ``ratelimit_seconds``, default 5 s), ``"5xx"`` (``status``, default 503),
``"slow"`` (``delay`` s, applied anyway), ``"drop"``. ``applied=True`` performs the
write before a ``5xx``/``drop``.

NOTE prawcore retries 500/502/503/504 and connection errors up to 2 more times
(sleeping 2-4 s, then 0-2 s) -- including POSTs, so an ``applied`` fault on submit
produces a duplicate post, exactly as it would against Reddit.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import math
import re
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes._server import FakeLifecycle, FakeServer, drop_connection

__all__ = ["ROUTE_KINDS", "FakeReddit", "RecordedRequest", "ratelimit_message"]

ROUTE_KINDS = (
    "access_token",
    "me",
    "submit",
    "comment",
    "delete",
    "submission",
    "info",
    "user_submitted",
    "user_comments",
    "user_about",
    "subreddit_new",
    "unknown",
)
FAULT_KINDS = ("429", "ratelimit", "5xx", "slow", "drop")
WWW = "https://www.reddit.com"

# Strong references to shielded "slow" tasks: they must finish even if aiohttp cancels
# the request handler (client gone), and the loop itself only keeps weak references.
_BACKGROUND: set[asyncio.Future[Any]] = set()


def _keep(fut: asyncio.Future[Any]) -> asyncio.Future[Any]:
    _BACKGROUND.add(fut)
    fut.add_done_callback(_BACKGROUND.discard)
    return fut


@dataclass
class RecordedRequest:
    kind: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    form: dict[str, str] = field(default_factory=dict)
    fault: str | None = None
    status: int | None = None
    at: float = field(default_factory=time.time)


@dataclass
class Fault:
    kind: str
    retry_after: float = 540.0
    status: int = 503
    delay: float = 1.0
    applied: bool = False


def ratelimit_message(seconds: float) -> str:
    """Reddit's RATELIMIT wording (praw parses the number and unit out of it)."""
    if seconds < 1:
        amount = f"{max(1, int(seconds * 1000))} milliseconds"
    elif seconds < 60:
        amount = f"{int(seconds)} second" + ("s" if int(seconds) != 1 else "")
    else:
        minutes = math.ceil(seconds / 60)
        amount = f"{minutes} minute" + ("s" if minutes != 1 else "")
    return f"Looks like you've been doing that a lot. Take a break for {amount} before trying again."


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    hdrs = {"Content-Type": "application/json"}
    if headers:
        hdrs.update(headers)
    return web.Response(body=json.dumps(data).encode(), status=status, headers=hdrs)


def _api_errors(*errors: list[str], **extra: Any) -> web.Response:
    body: dict[str, Any] = {"json": {"errors": [list(e) for e in errors]}}
    body["json"].update(extra)
    return _json(body)


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"


def _slug(title: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")
    return s[:50] or "_"


def _listing(
    children: list[dict[str, Any]], *, after: str | None = None, before: str | None = None
) -> dict[str, Any]:
    return {
        "kind": "Listing",
        "data": {
            "after": after,
            "before": before,
            "dist": len(children),
            "modhash": None,
            "geo_filter": "",
            "children": children,
        },
    }


class FakeReddit(FakeLifecycle):
    """Stateful fake of the Reddit API subset a publisher needs (127.0.0.1:0, own thread)."""

    def __init__(
        self,
        *,
        username: str = "quanticity_bot",
        password: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        subreddits: set[str] | None = None,
        token_ttl: int = 86400,
    ) -> None:
        """``password``/``client_id``/``client_secret``: enforced when given (any accepted
        otherwise). ``subreddits``: if given, submitting elsewhere fails with
        ``SUBREDDIT_NOEXIST``."""
        self.username = username
        self.password = password
        self.client_id = client_id
        self.client_secret = client_secret
        self.subreddits = {s.lower() for s in subreddits} if subreddits else None
        self.token_ttl = token_ttl
        self.user_id = "1q2w3e4r"
        self._lock = threading.RLock()
        self.server = FakeServer(name="fake-reddit")
        self._register_routes()
        self._init_state()

    # ------------------------------------------------------------------ lifecycle

    def praw_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for ``praw.Reddit(**fake.praw_kwargs())``."""
        kw = {
            "client_id": self.client_id or "fake-client-id",
            "client_secret": self.client_secret or "fake-client-secret",
            "username": self.username,
            "password": self.password or "fake-password",
            "user_agent": "quanticity-tests/0.1 (fake reddit)",
            "oauth_url": self.base_url,
            "reddit_url": self.base_url,
            "check_for_updates": False,
            "check_for_async": False,
        }
        kw.update(overrides)
        return kw

    # ------------------------------------------------------------------ test helpers
    def _init_state(self) -> None:
        with self._lock:
            self._submissions: dict[str, dict[str, Any]] = {}  # insertion = chronological
            self._comments: dict[str, dict[str, Any]] = {}
            self._tokens: set[str] = set()
            self._faults: dict[str, deque[Fault]] = {}
            self._requests: list[RecordedRequest] = []
            self._next_link = int("1h00000", 36)
            self._next_comment = int("k000000", 36)

    def reset(self) -> None:
        """Forget posts, comments, tokens, queued faults and recorded requests."""
        self._init_state()

    def submissions(
        self, subreddit: str | None = None, *, include_deleted: bool = False
    ) -> list[dict[str, Any]]:
        """Submissions (t3 ``data`` dicts), oldest first."""
        with self._lock:
            return [
                copy.deepcopy(s)
                for s in self._submissions.values()
                if (subreddit is None or s["subreddit"].lower() == subreddit.lower())
                and (include_deleted or not s["_deleted"])
            ]

    def submission(self, submission_id: str) -> dict[str, Any] | None:
        with self._lock:
            s = self._submissions.get(submission_id.removeprefix("t3_"))
            return copy.deepcopy(s) if s else None

    def comments(
        self, submission_id: str | None = None, *, include_deleted: bool = False
    ) -> list[dict[str, Any]]:
        """Comments (t1 ``data`` dicts), oldest first, optionally of one submission."""
        with self._lock:
            link = None if submission_id is None else "t3_" + submission_id.removeprefix("t3_")
            return [
                copy.deepcopy(c)
                for c in self._comments.values()
                if (link is None or c["link_id"] == link) and (include_deleted or not c["_deleted"])
            ]

    def add_submission(
        self, title: str, text: str = "", subreddit: str = "test", *, created_utc: float | None = None
    ) -> dict[str, Any]:
        """Seed a self post as if made earlier (e.g. before a simulated crash)."""
        with self._lock:
            return copy.deepcopy(self._create_submission(subreddit, title, text, None, created_utc))

    def expire_tokens(self) -> None:
        """Invalidate issued access tokens: the next API call gets 401 and praw re-authenticates."""
        with self._lock:
            self._tokens.clear()

    def fail_next(
        self,
        route_kind: str,
        kind: str = "429",
        count: int = 1,
        *,
        retry_after: float = 540.0,
        status: int = 503,
        delay: float = 1.0,
        applied: bool = False,
    ) -> None:
        """Queue ``count`` faults for ``route_kind`` (one of :data:`ROUTE_KINDS` or ``"*"``).

        ``retry_after`` is the wait in the ``RATELIMIT`` message / ``x-ratelimit-reset``.
        """
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
    def _create_submission(
        self, sr: str, title: str, text: str, url: str | None, created_utc: float | None = None
    ) -> dict[str, Any]:
        sid = _b36(self._next_link)
        self._next_link += 1
        now = created_utc if created_utc is not None else time.time()
        permalink = f"/r/{sr}/comments/{sid}/{_slug(title)}/"
        data = {
            "id": sid,
            "name": f"t3_{sid}",
            "title": title,
            "selftext": text if url is None else "",
            "selftext_html": None,
            "is_self": url is None,
            "url": url or WWW + permalink,
            "domain": f"self.{sr}" if url is None else re.sub(r"^https?://([^/]+).*$", r"\1", url),
            "permalink": permalink,
            "author": self.username,
            "author_fullname": f"t2_{self.user_id}",
            "subreddit": sr,
            "subreddit_id": f"t5_{_b36(zlib.crc32(sr.lower().encode()) % 36**6)}",
            "subreddit_name_prefixed": f"r/{sr}",
            "created_utc": float(int(now)),
            "created": float(int(now)),
            "num_comments": 0,
            "score": 1,
            "ups": 1,
            "downs": 0,
            "upvote_ratio": 1.0,
            "over_18": False,
            "spoiler": False,
            "locked": False,
            "archived": False,
            "stickied": False,
            "edited": False,
            "distinguished": None,
            "removed_by_category": None,
            "link_flair_text": None,
            "send_replies": True,
            "_deleted": False,
        }
        self._submissions[sid] = data
        return data

    def _create_comment(self, parent_fullname: str, text: str) -> dict[str, Any]:
        cid = _b36(self._next_comment)
        self._next_comment += 1
        if parent_fullname.startswith("t3_"):
            sub = self._submissions[parent_fullname[3:]]
            depth = 0
        else:
            parent = self._comments[parent_fullname[3:]]
            sub = self._submissions[parent["link_id"][3:]]
            depth = parent["depth"] + 1
        now = float(int(time.time()))
        data = {
            "id": cid,
            "name": f"t1_{cid}",
            "body": text,
            "body_html": f'<div class="md"><p>{text}</p>\n</div>',
            "author": self.username,
            "author_fullname": f"t2_{self.user_id}",
            "link_id": sub["name"],
            "parent_id": parent_fullname,
            "subreddit": sub["subreddit"],
            "subreddit_id": sub["subreddit_id"],
            "subreddit_name_prefixed": sub["subreddit_name_prefixed"],
            "permalink": f"{sub['permalink']}{cid}/",
            "link_permalink": WWW + sub["permalink"],
            "created_utc": now,
            "created": now,
            "score": 1,
            "ups": 1,
            "downs": 0,
            "depth": depth,
            "is_submitter": True,
            "edited": False,
            "distinguished": None,
            "stickied": False,
            "locked": False,
            "archived": False,
            "collapsed": False,
            "controversiality": 0,
            "send_replies": True,
            "replies": "",
            "_deleted": False,
        }
        self._comments[cid] = data
        sub["num_comments"] += 1
        return data

    @staticmethod
    def _public(data: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in data.items() if not k.startswith("_")}

    def _thing(self, data: dict[str, Any]) -> dict[str, Any]:
        kind = "t3" if data["name"].startswith("t3_") else "t1"
        return {"kind": kind, "data": self._public(data)}

    def _lookup(self, fullname: str) -> dict[str, Any] | None:
        if fullname.startswith("t3_"):
            return self._submissions.get(fullname[3:])
        if fullname.startswith("t1_"):
            return self._comments.get(fullname[3:])
        return None

    # ------------------------------------------------------------------ routing
    def _register_routes(self) -> None:
        add = self.server.add_route
        s = "{slash:/?}"
        add("POST", "/api/v1/access_token" + s, self._wrap("access_token", self._h_token, oauth=False))
        add("GET", "/api/v1/me" + s, self._wrap("me", self._h_me))
        add("POST", "/api/submit" + s, self._wrap("submit", self._h_submit))
        add("POST", "/api/comment" + s, self._wrap("comment", self._h_comment))
        add("POST", "/api/del" + s, self._wrap("delete", self._h_delete))
        add("GET", "/comments/{id:[0-9a-z]+}{rest:(/.*)?}", self._wrap("submission", self._h_submission))
        add("GET", "/api/info" + s, self._wrap("info", self._h_info))
        add("GET", "/user/{name}/submitted" + s, self._wrap("user_submitted", self._h_user_submitted))
        add("GET", "/user/{name}/comments" + s, self._wrap("user_comments", self._h_user_comments))
        add("GET", "/user/{name}/about" + s, self._wrap("user_about", self._h_user_about))
        add("GET", "/r/{sr}/new" + s, self._wrap("subreddit_new", self._h_subreddit_new))
        add("*", "/{tail:.*}", self._wrap("unknown", self._h_unknown))

    def _wrap(
        self,
        kind: str,
        handler: Callable[[web.Request, RecordedRequest], web.Response],
        *,
        oauth: bool = True,
    ) -> Callable:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            rec = RecordedRequest(
                kind, request.method, request.path, dict(request.query), dict(request.headers), body
            )
            if body and request.headers.get("Content-Type", "").startswith(
                "application/x-www-form-urlencoded"
            ):
                rec.form = dict(parse_qsl(body.decode(), keep_blank_values=True))
            with self._lock:
                self._requests.append(rec)
            fault = self._pop_fault(kind)
            if fault is not None:
                rec.fault = fault.kind
                if fault.kind == "slow":
                    return await asyncio.shield(
                        _keep(asyncio.ensure_future(self._slow(fault, handler, request, rec, oauth)))
                    )
                if fault.applied:
                    self._call(handler, request, rec, oauth)
                if fault.kind == "429":
                    resp = _json(
                        {"message": "Too Many Requests", "error": 429},
                        429,
                        {
                            "x-ratelimit-remaining": "0",
                            "x-ratelimit-used": "1000",
                            "x-ratelimit-reset": str(max(1, math.ceil(fault.retry_after))),
                        },
                    )
                elif fault.kind == "ratelimit":
                    resp = _api_errors(
                        ["RATELIMIT", ratelimit_message(fault.retry_after), "ratelimit"],
                        ratelimit=float(fault.retry_after),
                    )
                    resp.headers.update(self._rl_headers())
                elif fault.kind == "5xx":
                    resp = _json(
                        {
                            "message": "Internal Server Error"
                            if fault.status == 500
                            else "Service Unavailable",
                            "error": fault.status,
                        },
                        fault.status,
                    )
                else:
                    return await drop_connection(request)
            else:
                resp = self._call(handler, request, rec, oauth)
            rec.status = resp.status
            return resp

        return endpoint

    async def _slow(
        self, fault: Fault, handler: Callable, request: web.Request, rec: RecordedRequest, oauth: bool
    ) -> web.Response:
        await asyncio.sleep(fault.delay)
        resp = self._call(handler, request, rec, oauth)
        rec.status = resp.status
        return resp

    def _pop_fault(self, kind: str) -> Fault | None:
        with self._lock:
            for key in (kind, "*"):
                q = self._faults.get(key)
                if q:
                    return q.popleft()
        return None

    @staticmethod
    def _rl_headers() -> dict[str, str]:
        # remaining high and reset short: prawcore's rate limiter never needs to sleep.
        return {"x-ratelimit-remaining": "995.0", "x-ratelimit-used": "5", "x-ratelimit-reset": "300"}

    def _call(
        self, handler: Callable, request: web.Request, rec: RecordedRequest, oauth: bool
    ) -> web.Response:
        with self._lock:
            if oauth:
                auth = request.headers.get("Authorization", "")
                token = auth[7:] if auth.lower().startswith("bearer ") else None
                if token not in self._tokens:
                    return _json(
                        {"message": "Unauthorized", "error": 401},
                        401,
                        {"www-authenticate": 'Bearer realm="reddit", error="invalid_token"'},
                    )
            resp = handler(request, rec)
        if oauth:
            resp.headers.update(self._rl_headers())
        return resp

    # ------------------------------------------------------------------ handlers (under self._lock)
    def _h_unknown(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        return _json({"message": "Not Found", "error": 404}, 404)

    def _h_token(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        auth = request.headers.get("Authorization", "")
        try:
            cid, _, secret = base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            cid, secret = "", ""
        if (
            not auth.startswith("Basic ")
            or not cid
            or (
                self.client_id is not None
                and (cid != self.client_id or secret != (self.client_secret or secret))
            )
        ):
            return _json({"message": "Unauthorized", "error": 401}, 401)
        form = rec.form
        if form.get("grant_type") != "password":
            return _json({"error": "unsupported_grant_type"})
        if form.get("username", "").lower() != self.username.lower() or (
            self.password is not None and form.get("password") != self.password
        ):
            return _json({"error": "invalid_grant"})
        token = "fake-" + uuid.uuid4().hex
        self._tokens.add(token)
        return _json(
            {"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl, "scope": "*"}
        )

    def _h_me(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        return _json(
            {
                "name": self.username,
                "id": self.user_id,
                "created_utc": 1700000000.0,
                "created": 1700000000.0,
                "link_karma": 1,
                "comment_karma": 1,
                "total_karma": 2,
                "is_suspended": False,
                "has_verified_email": True,
                "is_mod": False,
                "is_gold": False,
                "icon_img": "",
                "features": {},
            }
        )

    def _h_submit(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        f = rec.form
        sr = (f.get("sr") or "").strip()
        title = f.get("title") or ""
        kind = f.get("kind") or "self"
        if not sr:
            return _api_errors(["SUBREDDIT_REQUIRED", "you must specify a subreddit", "sr"])
        if self.subreddits is not None and sr.lower() not in self.subreddits:
            return _api_errors(
                ["SUBREDDIT_NOEXIST", "Hmm, that community doesn't exist. Try checking the spelling.", "sr"]
            )
        if not title.strip():
            return _api_errors(["NO_TEXT", "we need something here", "title"])
        if len(title) > 300:
            return _api_errors(["TOO_LONG", "this is too long (max: 300)", "title"])
        if kind == "self":
            text = f.get("text") or ""
            if len(text) > 40000:
                return _api_errors(["TOO_LONG", "this is too long (max: 40000)", "text"])
            sub = self._create_submission(sr, title, text, None)
        elif kind == "link":
            url = f.get("url") or ""
            if not url.startswith(("http://", "https://")):
                return _api_errors(["BAD_URL", "you should check that url", "url"])
            sub = self._create_submission(sr, title, f.get("text") or "", url)
        else:
            return _api_errors(["INVALID_OPTION", "that option is not valid", "kind"])
        return _json(
            {
                "json": {
                    "errors": [],
                    "data": {
                        "url": WWW + sub["permalink"],
                        "drafts_count": 0,
                        "id": sub["id"],
                        "name": sub["name"],
                    },
                }
            }
        )

    def _h_comment(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        f = rec.form
        thing_id = f.get("thing_id") or f.get("parent") or ""
        text = f.get("text") or ""
        target = self._lookup(thing_id)
        if target is None or target["_deleted"]:
            kind = "DELETED_COMMENT" if thing_id.startswith("t1_") else "DELETED_LINK"
            msg = (
                "that comment has been deleted"
                if kind == "DELETED_COMMENT"
                else "the link you are commenting on has been deleted"
            )
            return _api_errors([kind, msg, "parent"])
        if target.get("locked"):
            return _api_errors(["THREAD_LOCKED", "Comments are locked.", "parent"])
        if not text.strip():
            return _api_errors(["NO_TEXT", "we need something here", "text"])
        if len(text) > 10000:
            return _api_errors(["TOO_LONG", "this is too long (max: 10000)", "text"])
        c = self._create_comment(thing_id, text)
        return _json({"json": {"errors": [], "data": {"things": [self._thing(c)]}}})

    def _h_delete(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        target = self._lookup(rec.form.get("id", ""))
        if target is not None:
            target["_deleted"] = True
            if target["name"].startswith("t3_"):
                target["selftext"] = "[deleted]"
                target["author"] = "[deleted]"
            else:
                target["body"] = "[deleted]"
                target["author"] = "[deleted]"
        return _json({})

    def _comment_tree(self, parent_fullname: str) -> list[dict[str, Any]]:
        out = []
        for c in self._comments.values():
            if c["parent_id"] == parent_fullname and not c["_deleted"]:
                node = self._public(c)
                kids = self._comment_tree(c["name"])
                node["replies"] = _listing(kids) if kids else ""
                out.append({"kind": "t1", "data": node})
        return out

    def _h_submission(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        sub = self._submissions.get(request.match_info["id"])
        if sub is None:
            return _json({"message": "Not Found", "error": 404}, 404)
        return _json([_listing([self._thing(sub)]), _listing(self._comment_tree(sub["name"]))])

    def _h_info(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        ids = [i for i in request.query.get("id", "").split(",") if i]
        things = [self._thing(t) for i in ids if (t := self._lookup(i)) is not None]
        return _json(_listing(things))

    def _paged(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        """Newest-first listing with Reddit's limit/after/before semantics."""
        q = request.query
        try:
            limit = max(1, min(100, int(q.get("limit", "25"))))
        except ValueError:
            limit = 25
        items = list(reversed(items))
        names = [i["name"] for i in items]
        if q.get("after") in names:
            items = items[names.index(q["after"]) + 1 :]
        elif q.get("before") in names:
            items = items[: names.index(q["before"])][-limit:]
        page = items[:limit]
        after = page[-1]["name"] if len(items) > limit and page else None
        return _json(_listing([self._thing(i) for i in page], after=after))

    def _h_user_submitted(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        name = request.match_info["name"].lower()
        items = [s for s in self._submissions.values() if s["author"].lower() == name and not s["_deleted"]]
        return self._paged(request, items)

    def _h_user_comments(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        name = request.match_info["name"].lower()
        items = [c for c in self._comments.values() if c["author"].lower() == name and not c["_deleted"]]
        return self._paged(request, items)

    def _h_user_about(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        if request.match_info["name"].lower() != self.username.lower():
            return _json({"message": "Not Found", "error": 404}, 404)
        return _json(
            {
                "kind": "t2",
                "data": {
                    "name": self.username,
                    "id": self.user_id,
                    "created_utc": 1700000000.0,
                    "link_karma": 1,
                    "comment_karma": 1,
                    "is_suspended": False,
                },
            }
        )

    def _h_subreddit_new(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        sr = request.match_info["sr"].lower()
        items = [s for s in self._submissions.values() if s["subreddit"].lower() == sr and not s["_deleted"]]
        return self._paged(request, items)
