"""Fake Discord REST API (v10) for discord.py used REST-only (no gateway).

Point discord.py at it by setting the class attribute ``discord.http.Route.BASE``
to :attr:`FakeDiscord.api_base` (``{base_url}/api/v10``) before the first
request (tests: ``monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)``).

Covered endpoints (all answer ``Content-Type: application/json`` exactly):

- ``GET  /users/@me``, ``GET /oauth2/applications/@me``      (``client.login``)
- ``GET  /channels/{id}``                                      (``client.fetch_channel``)
- ``POST /channels/{id}/messages``  JSON or multipart (``payload_json``), honours
  ``nonce`` + ``enforce_nonce`` (a repeated nonce from the same author returns the
  existing message, as Discord does), validates length limits
- ``GET  /channels/{id}/messages?limit&before&after&around``  newest first; as on
  Discord, messages read back carry no ``nonce`` (it is kept only ephemerally: it is
  in the create answer, and a re-send inside the window returns the message)
- attachments (``files[n]``) over :attr:`FakeDiscord.max_file_bytes` (10 MiB, a
  server without boosts) -> 413 ``Request entity too large`` (code 40005)
- ``GET|PATCH|DELETE /channels/{id}/messages/{mid}``
- ``POST /channels/{id}/messages/{mid}/threads``  -> type 11 thread, id == message id
- ``POST /webhooks/{id}/{token}?wait=&thread_id=``  (204 without ``wait``)

Thread-safe helpers for tests: :meth:`FakeDiscord.add_channel`,
:meth:`~FakeDiscord.add_webhook`, :meth:`~FakeDiscord.messages`,
:meth:`~FakeDiscord.threads`, :meth:`~FakeDiscord.fail_next`,
:meth:`~FakeDiscord.requests`, :meth:`~FakeDiscord.reset`.

Faults (``fail_next``) are consumed in FIFO order by the next requests of the
given route kind (or ``"*"`` for any route):

``"429"``   429 + JSON ``{"message", "retry_after", "global"}`` + ``Via`` and
            ``X-RateLimit-*`` headers. discord.py sleeps ``retry_after`` and retries.
``"5xx"``   status ``status`` (default 500). discord.py retries 500/502/504/524
            itself after sleeping 1, 3, 5, 7 s; 503 raises ``DiscordServerError`` at once.
``"slow"``  sleep ``delay`` seconds, then answer normally (the write is applied even
            if the client gave up meanwhile, as on the real service).
``"drop"``  abort the TCP connection without an answer.

With ``applied=True`` a ``"5xx"`` / ``"drop"`` fault first performs the request
(the message IS created) and then loses the answer: the "did it post?" case
that crash reconciliation must handle.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as _dt
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp import web

from tests.fakes._server import FakeLifecycle, FakeServer, drop_connection

__all__ = ["ROUTE_KINDS", "FakeDiscord", "Fault", "RecordedRequest", "webhook_url"]

DISCORD_EPOCH_MS = 1420070400000
API_PREFIX = r"/api/{ver:v\d+}"

#: route kinds accepted by :meth:`FakeDiscord.fail_next` / :meth:`FakeDiscord.requests`
ROUTE_KINDS = (
    "get_me",
    "get_application",
    "get_channel",
    "send_message",
    "get_messages",
    "get_message",
    "edit_message",
    "delete_message",
    "create_thread",
    "execute_webhook",
    "unknown",
)

FAULT_KINDS = ("429", "5xx", "slow", "drop")

_JSON = "application/json"

# Strong references to shielded "slow" tasks: they must finish even if aiohttp cancels
# the request handler (client gone), and the loop itself only keeps weak references.
_BACKGROUND: set[asyncio.Future[Any]] = set()


def _keep(fut: asyncio.Future[Any]) -> asyncio.Future[Any]:
    _BACKGROUND.add(fut)
    fut.add_done_callback(_BACKGROUND.discard)
    return fut


# --------------------------------------------------------------------------- records
@dataclass
class RecordedRequest:
    """One request as the fake saw it (bodies already decoded)."""

    kind: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any = None
    files: list[dict[str, Any]] = field(default_factory=list)
    fault: str | None = None
    status: int | None = None  # status sent (None for a dropped connection)
    at: float = field(default_factory=time.time)


@dataclass
class Fault:
    kind: str
    retry_after: float = 0.3
    status: int = 500
    delay: float = 1.0
    applied: bool = False
    is_global: bool = False


def webhook_url(webhook_id: int, token: str) -> str:
    """The discord.com URL discord.py needs for ``Webhook.from_url`` (host is ignored)."""
    return f"https://discord.com/api/webhooks/{webhook_id}/{token}"


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).isoformat()


class _Snowflakes:
    """Real-looking, strictly increasing Discord snowflakes."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            candidate = ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | (1 << 17)
            value = max(candidate, self._last + 1)
            self._last = value
            return value


def _error(status: int, message: str, code: int = 0, errors: dict | None = None) -> web.Response:
    body: dict[str, Any] = {"message": message, "code": code}
    if errors is not None:
        body["errors"] = errors
    return _json(body, status)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    hdrs = {"Content-Type": _JSON}
    if headers:
        hdrs.update(headers)
    return web.Response(body=json.dumps(data).encode(), status=status, headers=hdrs)


def _form_error(path: str, code: str, message: str) -> web.Response:
    """Discord's 50035 Invalid Form Body with a nested ``errors`` tree."""
    tree: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for part in reversed(path.split(".")):
        tree = {part: tree}
    return _error(400, "Invalid Form Body", 50035, tree)


# --------------------------------------------------------------------------- the fake
class FakeDiscord(FakeLifecycle):
    """Stateful fake of the Discord REST API on its own thread/loop (127.0.0.1:0)."""

    BOT_USER_ID = 1100000000000000001
    max_file_bytes = 10 * 1024 * 1024
    APPLICATION_ID = 1100000000000000002
    OWNER_USER_ID = 1100000000000000003

    def __init__(self, *, token: str | None = None, bot_name: str = "Quanticity") -> None:
        """``token``: if given, only ``Authorization: Bot <token>`` is accepted (else 401)."""
        self.token = token
        self.bot_name = bot_name
        self._lock = threading.RLock()
        self._ids = _Snowflakes()
        self.server = FakeServer(name="fake-discord")
        self._register_routes()
        self._init_state()

    # ------------------------------------------------------------------ lifecycle

    @property
    def api_base(self) -> str:
        """Value for ``discord.http.Route.BASE``."""
        return f"{self.base_url}/api/v10"

    # ------------------------------------------------------------------ state helpers
    def _init_state(self) -> None:
        with self._lock:
            self._channels: dict[int, dict[str, Any]] = {}
            self._messages: dict[int, list[dict[str, Any]]] = {}  # channel -> chronological
            self._webhooks: dict[int, dict[str, Any]] = {}
            self._nonces: dict[tuple[int, str], tuple[float, int, int]] = {}
            self._faults: dict[str, deque[Fault]] = {}
            self._requests: list[RecordedRequest] = []

    def reset(self) -> None:
        """Forget channels, messages, webhooks, queued faults and recorded requests."""
        self._init_state()

    def add_channel(
        self,
        channel_id: int,
        name: str = "signals",
        guild_id: int = 1200000000000000001,
        *,
        topic: str | None = None,
    ) -> dict[str, Any]:
        """Pre-create a guild text channel (type 0) so ``fetch_channel`` finds it."""
        channel = {
            "id": str(channel_id),
            "type": 0,
            "guild_id": str(guild_id),
            "name": name,
            "position": 0,
            "permission_overwrites": [],
            "parent_id": None,
            "nsfw": False,
            "topic": topic,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "default_auto_archive_duration": 1440,
            "default_thread_rate_limit_per_user": 0,
            "flags": 0,
        }
        with self._lock:
            self._channels[int(channel_id)] = channel
            self._messages.setdefault(int(channel_id), [])
        return copy.deepcopy(channel)

    def add_webhook(
        self,
        webhook_id: int,
        token: str | None = None,
        channel_id: int | None = None,
        name: str = "Quanticity",
    ) -> str:
        """Register an incoming webhook bound to ``channel_id``; returns its discord.com URL.

        ``token`` must be 60+ chars of ``[A-Za-z0-9.-_]`` for ``Webhook.from_url``; a
        random one is generated if omitted.
        """
        token = token or (uuid.uuid4().hex + uuid.uuid4().hex)[:68]
        with self._lock:
            if channel_id is not None and int(channel_id) not in self._channels:
                raise KeyError(f"add_channel({channel_id}) first")
            self._webhooks[int(webhook_id)] = {
                "id": str(webhook_id),
                "token": token,
                "channel_id": None if channel_id is None else str(channel_id),
                "name": name,
            }
        return webhook_url(webhook_id, token)

    def forget_nonces(self) -> None:
        """As if Discord's nonce window had passed: a re-send with an old nonce creates a new message."""
        with self._lock:
            self._nonces.clear()

    def messages(self, channel_id: int) -> list[dict[str, Any]]:
        """Messages of a channel or thread, oldest first (deep copies)."""
        with self._lock:
            return copy.deepcopy(self._messages.get(int(channel_id), []))

    def message(self, message_id: int) -> dict[str, Any] | None:
        with self._lock:
            found = self._find_message(int(message_id))
            return copy.deepcopy(found[1]) if found else None

    def threads(self, parent_id: int | None = None) -> list[dict[str, Any]]:
        """Thread channels (type 11), creation order, optionally for one parent channel."""
        with self._lock:
            out = [c for c in self._channels.values() if c["type"] in (10, 11, 12)]
            if parent_id is not None:
                out = [c for c in out if c["parent_id"] == str(parent_id)]
            return copy.deepcopy(out)

    def channel(self, channel_id: int) -> dict[str, Any] | None:
        with self._lock:
            ch = self._channels.get(int(channel_id))
            return copy.deepcopy(ch) if ch else None

    def fail_next(
        self,
        route_kind: str,
        kind: str = "429",
        count: int = 1,
        *,
        retry_after: float = 0.3,
        status: int = 500,
        delay: float = 1.0,
        applied: bool = False,
        is_global: bool = False,
    ) -> None:
        """Queue ``count`` faults for the next requests of ``route_kind`` (or ``"*"``).

        ``kind``: ``"429"`` (``retry_after``, ``is_global``), ``"5xx"`` (``status``),
        ``"slow"`` (``delay``), ``"drop"``; ``applied=True`` performs the write before
        a ``5xx``/``drop``. ``route_kind`` is one of :data:`ROUTE_KINDS` or ``"*"``.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, not {kind!r}")
        if route_kind != "*" and route_kind not in ROUTE_KINDS:
            raise ValueError(f"route kind must be '*' or one of {ROUTE_KINDS}, not {route_kind!r}")
        if kind == "5xx" and not 500 <= status <= 599:
            raise ValueError("status must be 5xx")
        fault = Fault(
            kind, retry_after=retry_after, status=status, delay=delay, applied=applied, is_global=is_global
        )
        with self._lock:
            q = self._faults.setdefault(route_kind, deque())
            for _ in range(count):
                q.append(copy.copy(fault))

    def pending_faults(self, route_kind: str | None = None) -> int:
        with self._lock:
            if route_kind is None:
                return sum(len(q) for q in self._faults.values())
            return len(self._faults.get(route_kind, ()))

    def requests(self, kind: str | None = None) -> list[RecordedRequest]:
        """Recorded requests (copies), in arrival order, optionally of one route kind."""
        with self._lock:
            return [copy.copy(r) for r in self._requests if kind is None or r.kind == kind]

    # ------------------------------------------------------------------ routing
    def _register_routes(self) -> None:
        add = self.server.add_route
        p = API_PREFIX
        add("GET", p + "/users/@me", self._wrap("get_me", self._h_get_me))
        add("GET", p + "/oauth2/applications/@me", self._wrap("get_application", self._h_get_application))
        add("GET", p + "/channels/{channel_id:\\d+}", self._wrap("get_channel", self._h_get_channel))
        add(
            "POST",
            p + "/channels/{channel_id:\\d+}/messages",
            self._wrap("send_message", self._h_send_message),
        )
        add(
            "GET",
            p + "/channels/{channel_id:\\d+}/messages",
            self._wrap("get_messages", self._h_get_messages),
        )
        mid = p + "/channels/{channel_id:\\d+}/messages/{message_id:\\d+}"
        add("GET", mid, self._wrap("get_message", self._h_get_message))
        add("PATCH", mid, self._wrap("edit_message", self._h_edit_message))
        add("DELETE", mid, self._wrap("delete_message", self._h_delete_message))
        add("POST", mid + "/threads", self._wrap("create_thread", self._h_create_thread))
        add(
            "POST",
            p + "/webhooks/{webhook_id:\\d+}/{webhook_token}",
            self._wrap("execute_webhook", self._h_execute_webhook, auth=False),
        )
        add("*", "/{tail:.*}", self._wrap("unknown", self._h_unknown, auth=False))

    def _wrap(
        self, kind: str, handler: Callable[[web.Request, RecordedRequest], web.Response], *, auth: bool = True
    ) -> Callable[[web.Request], Any]:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            rec = await self._record(kind, request)
            fault = self._pop_fault(kind)
            if fault is not None:
                rec.fault = fault.kind
                if fault.kind == "slow":
                    # Shielded: the write lands after the delay even if the client gave up
                    # and aiohttp cancels this handler on the lost connection.
                    resp = await asyncio.shield(
                        _keep(asyncio.ensure_future(self._slow(fault.delay, handler, request, rec, auth)))
                    )
                    rec.status = resp.status
                    return resp
                if fault.applied:
                    self._call(handler, request, rec, auth)
            if fault is None:
                resp = self._call(handler, request, rec, auth)
            elif fault.kind == "429":
                resp = self._rate_limited(kind, fault)
            elif fault.kind == "5xx":
                resp = _error(fault.status, f"{fault.status}: Internal Server Error", 0)
            else:  # drop
                return await drop_connection(request)
            rec.status = resp.status
            return resp

        return endpoint

    async def _slow(
        self, delay: float, handler: Callable, request: web.Request, rec: RecordedRequest, auth: bool
    ):
        await asyncio.sleep(delay)
        resp = self._call(handler, request, rec, auth)
        rec.status = resp.status
        return resp

    def _call(
        self, handler: Callable, request: web.Request, rec: RecordedRequest, auth: bool
    ) -> web.Response:
        if auth:
            denied = self._check_auth(request)
            if denied is not None:
                return denied
        with self._lock:
            return handler(request, rec)

    async def _record(self, kind: str, request: web.Request) -> RecordedRequest:
        body = await request.read()
        rec = RecordedRequest(
            kind=kind,
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
            body=body,
        )
        ctype = request.headers.get("Content-Type", "")
        try:
            if ctype.startswith("application/json") and body:
                rec.json = json.loads(body)
            elif ctype.startswith("multipart/form-data"):
                rec.json, rec.files = _parse_multipart(body, ctype)
        except ValueError:
            rec.json = None
        with self._lock:
            self._requests.append(rec)
        return rec

    def _pop_fault(self, kind: str) -> Fault | None:
        with self._lock:
            for key in (kind, "*"):
                q = self._faults.get(key)
                if q:
                    return q.popleft()
        return None

    def _check_auth(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bot ") or not header[4:].strip():
            return _error(401, "401: Unauthorized", 0)
        if self.token is not None and header[4:] != self.token:
            return _error(401, "401: Unauthorized", 0)
        return None

    def _rate_limited(self, kind: str, fault: Fault) -> web.Response:
        headers = {
            "Via": "1.1 google",  # discord.py treats a 429 without Via as a Cloudflare ban
            "Retry-After": str(max(1, int(fault.retry_after + 0.999))),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + fault.retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{fault.retry_after:.3f}",
            "X-RateLimit-Bucket": f"fake-{kind}",
            "X-RateLimit-Scope": "global" if fault.is_global else "user",
        }
        if fault.is_global:
            headers["X-RateLimit-Global"] = "true"
        body = {
            "message": "You are being rate limited.",
            "retry_after": fault.retry_after,
            "global": fault.is_global,
        }
        return _json(body, 429, headers)

    # ------------------------------------------------------------------ payloads
    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": str(self.BOT_USER_ID),
            "username": self.bot_name,
            "discriminator": "0",
            "global_name": None,
            "avatar": None,
            "bot": True,
            "public_flags": 0,
            "flags": 0,
        }

    def _owner(self) -> dict[str, Any]:
        return {
            "id": str(self.OWNER_USER_ID),
            "username": "owner",
            "discriminator": "0",
            "global_name": "Owner",
            "avatar": None,
            "public_flags": 0,
            "flags": 0,
        }

    def _find_message(self, message_id: int) -> tuple[int, dict[str, Any]] | None:
        for ch_id, msgs in self._messages.items():
            for m in msgs:
                if int(m["id"]) == message_id:
                    return ch_id, m
        return None

    def _channel_of(self, request: web.Request) -> dict[str, Any] | None:
        return self._channels.get(int(request.match_info["channel_id"]))

    # ------------------------------------------------------------------ handlers (run under self._lock)
    def _h_unknown(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        return _error(404, "404: Not Found", 0)

    def _h_get_me(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        me = self._bot_user()
        me.update(
            {"verified": True, "mfa_enabled": False, "email": None, "locale": "en-US", "premium_type": 0}
        )
        return _json(me)

    def _h_get_application(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        return _json(
            {
                "id": str(self.APPLICATION_ID),
                "name": self.bot_name,
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "bot_public": False,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "flags": 0,
                "owner": self._owner(),
                "team": None,
                "bot": self._bot_user(),
                "redirect_uris": [],
                "interactions_endpoint_url": None,
                "tags": [],
                "approximate_guild_count": 1,
            }
        )

    def _h_get_channel(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        ch = self._channel_of(request)
        if ch is None:
            return _error(404, "Unknown Channel", 10003)
        return _json(ch)

    def _h_send_message(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        ch = self._channel_of(request)
        if ch is None:
            return _error(404, "Unknown Channel", 10003)
        payload = rec.json if isinstance(rec.json, dict) else {}
        author = self._bot_user()
        nonce = payload.get("nonce")
        if nonce is not None and payload.get("enforce_nonce"):
            nonce = str(nonce)
            if len(nonce) > 25:
                return _form_error("nonce", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
            hit = self._nonces.get((self.BOT_USER_ID, nonce))
            if hit is not None and time.time() - hit[0] < 300:
                found = self._find_message(hit[2])
                if found is not None:
                    return _json(found[1])
        invalid = _validate_message(payload, rec.files) or self._too_large(rec.files)
        if invalid is not None:
            return invalid
        msg = self._create_message(int(ch["id"]), payload, rec.files, author)
        if nonce is not None and payload.get("enforce_nonce"):
            self._nonces[(self.BOT_USER_ID, str(nonce))] = (time.time(), int(ch["id"]), int(msg["id"]))
        return _json(msg)

    def _create_message(
        self,
        channel_id: int,
        payload: dict[str, Any],
        files: list[dict[str, Any]],
        author: dict[str, Any],
        webhook_id: str | None = None,
    ) -> dict[str, Any]:
        now = time.time()
        mid = self._ids.next()
        embeds = []
        for e in payload.get("embeds") or []:
            e = copy.deepcopy(e)
            e.setdefault("type", "rich")
            embeds.append(e)
        attachments = [
            {
                "id": str(self._ids.next()),
                "filename": f["filename"],
                "size": len(f["data"]),
                "url": f"{self.base_url}/attachments/{channel_id}/{mid}/{f['filename']}",
                "proxy_url": f"{self.base_url}/attachments/{channel_id}/{mid}/{f['filename']}",
                "content_type": f.get("content_type"),
            }
            for f in files
        ]
        msg: dict[str, Any] = {
            "id": str(mid),
            "channel_id": str(channel_id),
            "type": 0,
            "author": author,
            "content": payload.get("content") or "",
            "timestamp": _iso(now),
            "edited_timestamp": None,
            "tts": bool(payload.get("tts", False)),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": attachments,
            "embeds": embeds,
            "pinned": False,
            "flags": int(payload.get("flags") or 0),
            "components": payload.get("components") or [],
        }
        if payload.get("nonce") is not None:
            msg["nonce"] = str(payload["nonce"])
        if webhook_id is not None:
            msg["webhook_id"] = webhook_id
        if payload.get("message_reference"):
            msg["type"] = 19
            msg["message_reference"] = payload["message_reference"]
        ch = self._channels[channel_id]
        if ch["type"] in (10, 11, 12):
            msg["position"] = ch["total_message_sent"]
            ch["message_count"] += 1
            ch["total_message_sent"] += 1
        ch["last_message_id"] = str(mid)
        self._messages.setdefault(channel_id, []).append(msg)
        return copy.deepcopy(msg)

    def _too_large(self, files: list[dict[str, Any]]) -> web.Response | None:
        if any(len(f["data"]) > self.max_file_bytes for f in files):
            return _error(413, "Request entity too large", 40005)
        return None

    def _h_get_messages(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        ch = self._channel_of(request)
        if ch is None:
            return _error(404, "Unknown Channel", 10003)
        try:
            limit = int(request.query.get("limit", "50"))
        except ValueError:
            return _form_error("limit", "NUMBER_TYPE_COERCE", "Value is not int.")
        if not 1 <= limit <= 100:
            return _form_error("limit", "NUMBER_TYPE_MAX", "int value should be between 1 and 100.")
        msgs = self._messages.get(int(ch["id"]), [])
        newest_first = sorted(msgs, key=lambda m: int(m["id"]), reverse=True)
        q = request.query
        if "before" in q:
            newest_first = [m for m in newest_first if int(m["id"]) < int(q["before"])]
        elif "after" in q:
            newest_first = [m for m in newest_first if int(m["id"]) > int(q["after"])]
            newest_first = newest_first[-limit:]  # the `limit` messages right after `after`
        elif "around" in q:
            pivot = int(q["around"])
            older = [m for m in newest_first if int(m["id"]) <= pivot][: (limit + 1) // 2]
            newer = [m for m in newest_first if int(m["id"]) > pivot][-(limit // 2) :] if limit // 2 else []
            newest_first = newer + older
        return _json([_read_back(m) for m in newest_first[:limit]])

    def _h_get_message(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        ch = self._channel_of(request)
        if ch is None:
            return _error(404, "Unknown Channel", 10003)
        mid = int(request.match_info["message_id"])
        for m in self._messages.get(int(ch["id"]), []):
            if int(m["id"]) == mid:
                return _json(_read_back(m))
        return _error(404, "Unknown Message", 10008)

    def _h_edit_message(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        ch = self._channel_of(request)
        if ch is None:
            return _error(404, "Unknown Channel", 10003)
        mid = int(request.match_info["message_id"])
        payload = rec.json if isinstance(rec.json, dict) else {}
        for m in self._messages.get(int(ch["id"]), []):
            if int(m["id"]) == mid:
                if "content" in payload:
                    m["content"] = payload["content"] or ""
                if "embeds" in payload:
                    m["embeds"] = [dict(e, type=e.get("type", "rich")) for e in payload["embeds"] or []]
                m["edited_timestamp"] = _iso(time.time())
                return _json(m)
        return _error(404, "Unknown Message", 10008)

    def _h_delete_message(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        ch = self._channel_of(request)
        if ch is None:
            return _error(404, "Unknown Channel", 10003)
        mid = int(request.match_info["message_id"])
        msgs = self._messages.get(int(ch["id"]), [])
        for i, m in enumerate(msgs):
            if int(m["id"]) == mid:
                del msgs[i]
                return web.Response(status=204)
        return _error(404, "Unknown Message", 10008)

    def _h_create_thread(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        ch = self._channel_of(request)
        if ch is None:
            return _error(404, "Unknown Channel", 10003)
        if ch["type"] not in (0, 5):
            return _error(400, "Cannot execute action on this channel type", 50024)
        mid = int(request.match_info["message_id"])
        msg = next((m for m in self._messages.get(int(ch["id"]), []) if int(m["id"]) == mid), None)
        if msg is None:
            return _error(404, "Unknown Message", 10008)
        if mid in self._channels:
            return _error(400, "A thread has already been created for this message", 160004)
        payload = rec.json if isinstance(rec.json, dict) else {}
        name = (payload.get("name") or "").strip()
        if not 1 <= len(name) <= 100:
            return _form_error("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        now = _iso(time.time())
        archive = int(payload.get("auto_archive_duration") or ch.get("default_auto_archive_duration") or 1440)
        thread = {
            "id": str(mid),  # a thread started from a message shares the message's id
            "type": 11,
            "guild_id": ch["guild_id"],
            "parent_id": ch["id"],
            "owner_id": str(self.BOT_USER_ID),
            "name": name,
            "last_message_id": None,
            "rate_limit_per_user": int(payload.get("rate_limit_per_user") or 0),
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": archive,
                "archive_timestamp": now,
                "locked": False,
                "create_timestamp": now,
            },
            "member": {"id": str(mid), "user_id": str(self.BOT_USER_ID), "join_timestamp": now, "flags": 1},
        }
        self._channels[mid] = thread
        self._messages[mid] = []
        msg["flags"] = int(msg.get("flags") or 0) | 32  # HAS_THREAD
        msg["thread"] = {k: v for k, v in thread.items() if k != "member"}
        return _json(thread, 201)

    def _h_execute_webhook(self, request: web.Request, rec: RecordedRequest) -> web.Response:
        wid = int(request.match_info["webhook_id"])
        hook = self._webhooks.get(wid)
        if hook is None:
            return _error(404, "Unknown Webhook", 10015)
        if request.match_info["webhook_token"] != hook["token"]:
            return _error(401, "Invalid Webhook Token", 50027)
        if hook["channel_id"] is None:
            return _error(404, "Unknown Channel", 10003)
        target = int(hook["channel_id"])
        thread_id = request.query.get("thread_id")
        if thread_id:
            thread = self._channels.get(int(thread_id))
            if thread is None or thread.get("parent_id") != hook["channel_id"]:
                return _error(400, "Unknown Channel", 10003)
            target = int(thread_id)
        payload = rec.json if isinstance(rec.json, dict) else {}
        invalid = _validate_message(payload, rec.files) or self._too_large(rec.files)
        if invalid is not None:
            return invalid
        author = {
            "id": hook["id"],
            "username": payload.get("username") or hook["name"],
            "avatar": None,
            "discriminator": "0000",
            "bot": True,
        }
        msg = self._create_message(target, payload, rec.files, author, webhook_id=hook["id"])
        if request.query.get("wait", "").lower() in ("1", "true"):
            return _json(msg)
        return web.Response(status=204)


# --------------------------------------------------------------------------- helpers
def _read_back(msg: dict[str, Any]) -> dict[str, Any]:
    """A stored message as a later read returns it: without the send's nonce."""
    return {k: v for k, v in msg.items() if k != "nonce"}


def _validate_message(payload: dict[str, Any], files: list[dict[str, Any]]) -> web.Response | None:
    content = payload.get("content") or ""
    embeds = payload.get("embeds") or []
    if (
        not content
        and not embeds
        and not files
        and not payload.get("components")
        and not payload.get("sticker_ids")
    ):
        return _error(400, "Cannot send an empty message", 50006)
    if len(content) > 2000:
        return _form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
    if len(embeds) > 10:
        return _form_error("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    total = 0
    for i, e in enumerate(embeds):
        limits = {"title": 256, "description": 4096}
        for key, lim in limits.items():
            if len(e.get(key) or "") > lim:
                return _form_error(
                    f"embeds.{i}.{key}", "BASE_TYPE_MAX_LENGTH", f"Must be {lim} or fewer in length."
                )
        fields = e.get("fields") or []
        if len(fields) > 25:
            return _form_error(f"embeds.{i}.fields", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        total += len(e.get("title") or "") + len(e.get("description") or "")
        total += len((e.get("footer") or {}).get("text") or "") + len(
            (e.get("author") or {}).get("name") or ""
        )
        for f in fields:
            total += len(f.get("name") or "") + len(f.get("value") or "")
    if total > 6000:
        return _form_error("embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")
    return None


def _parse_multipart(body: bytes, content_type: str) -> tuple[Any, list[dict[str, Any]]]:
    """Decode discord.py's multipart body: ``payload_json`` plus ``files[n]`` parts."""
    from email.parser import BytesParser
    from email.policy import HTTP

    msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    payload: Any = None
    files: list[dict[str, Any]] = []
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = cast(bytes, part.get_payload(decode=True) or b"")
        if name == "payload_json":
            payload = json.loads(data)
        elif part.get_filename():
            files.append(
                {
                    "field": name,
                    "filename": part.get_filename(),
                    "data": data,
                    "content_type": part.get_content_type(),
                }
            )
    return payload, files
