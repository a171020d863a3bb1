"""Discord through discord.py, REST only (no gateway).

``DiscordSink`` (bot mode): ``Client(intents=Intents.none())`` + ``login``; one text
channel per tier (``DISCORD_CHANNEL_PREMIUM/BASIC/FREE``). A trade's first message
is the root; the first update creates a thread from it (created once; Discord gives
a thread started from a message the message's id, so "already created" (code
160004) after a crash is resolved to the root id); updates go into the thread.
Premium messages are embeds.

Exactly-once: every send carries ``nonce=<idempotency key>`` (discord.py always
adds ``enforce_nonce=True``), so a re-send within Discord's nonce window returns
the message already created. The nonce is not kept: messages read back later do
not carry it (Discord keeps it only ephemerally). So ``find_existing`` scans the
recent messages of the channel/thread for one of the bot's own whose content is
the delivery's exact payload (text; for an embed its title, description and
footer) - or whose nonce is the key, where the platform hands one back. No
internal id is ever shown to subscribers.

Attachments: a report post carries its page as ``files[0]`` (multipart). The
renderer only hands over a file within ``distribution.report_attach_max_bytes``;
a file that has disappeared by the time of the post is left off (logged, counted
in ``quanticity_report_attachments_skipped_total``), the message goes out anyway.

``DiscordWebhookSink`` (webhook mode): one incoming webhook per tier, no threads
(updates are top-level messages), no reconciliation (a webhook cannot read the
channel): at-least-once if the process dies between post and record. Attachments
as in bot mode.

``discord.http.Route.BASE`` is set from ``DISCORD_API_BASE`` when given (tests,
proxies); discord.py retries 500/502/504 itself (sleeping 1, 3, 5, 7 s) and
sleeps short 429s itself; whatever still fails is raised as :class:`PublishError`.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from pathlib import Path
from typing import Any

import aiohttp
import discord

from bot.publishers.base import (
    ATTACHMENTS_SKIPPED,
    Payload,
    PostMeta,
    PostResult,
    PublishError,
    Sink,
    ThreadRef,
    same_text,
)

log = logging.getLogger("quanticity.publishers.discord")
THREAD_ALREADY_EXISTS = 160004
_API_SUFFIX = re.compile(r"/api/v\d+/?$")


def set_api_base(api_base: str | None) -> None:
    """Point discord.py at ``api_base`` (``http://host:port`` or ``.../api/v10``)."""
    if not api_base:
        return
    base = api_base.rstrip("/")
    if not _API_SUFFIX.search(base):
        base = f"{base}/api/v10"
    discord.http.Route.BASE = base


def _retry_after(exc: discord.HTTPException) -> float | None:
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    for name in ("X-RateLimit-Reset-After", "Retry-After"):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value))
            except ValueError:
                continue
    return None


def map_error(exc: BaseException) -> PublishError:
    """discord.py / aiohttp failures -> PublishError (never carries the token)."""
    if isinstance(exc, PublishError):
        return exc
    if isinstance(exc, discord.RateLimited):
        return PublishError("discord rate limited", rate_limited=True, retry_after=exc.retry_after)
    if isinstance(exc, discord.LoginFailure):
        return PublishError("discord login failed (check DISCORD_BOT_TOKEN)")
    if isinstance(exc, discord.HTTPException):
        status = exc.status
        text = f"discord {status} (code {exc.code}): {exc.text[:200]}"
        if status == 429:
            return PublishError(text, rate_limited=True, retry_after=_retry_after(exc))
        if status >= 500:
            return PublishError(text, ambiguous=True)
        if status == 400:
            return PublishError(text, permanent=True)
        return PublishError(text)  # 401/403/404: configuration; retried, then dead-lettered
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ClientError, OSError)):
        return PublishError(f"discord connection: {type(exc).__name__}", ambiguous=True)
    return PublishError(f"discord: {type(exc).__name__}", ambiguous=True)


def _embed(embed: dict[str, Any]) -> discord.Embed:
    return discord.Embed.from_dict(embed)


def _file(path: str | None) -> discord.File | None:
    """The report page to attach, read now (a retry inside discord.py re-sends the same bytes)."""
    if not path:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        ATTACHMENTS_SKIPPED.labels("discord", "missing").inc()
        log.warning("attachment %s unreadable (%s): posted without it", Path(path).name, type(exc).__name__)
        return None
    return discord.File(io.BytesIO(data), filename=Path(path).name)


def _matches(msg: discord.Message, idempotency_key: str, expected: Payload | None, me: int | None) -> bool:
    """Is ``msg`` the post of this delivery: its nonce (when Discord returns one), else the bot's
    own message with exactly the expected content."""
    if msg.nonce is not None and str(msg.nonce) == idempotency_key:
        return True
    if expected is None or (me is not None and msg.author.id != me):
        return False
    want = expected.embed
    if want is None:
        return same_text(msg.content or "", expected.text)  # (Discord may add link-preview embeds)
    footer = (want.get("footer") or {}).get("text") or ""
    return any(same_text(e.title or "", want.get("title") or "")
               and same_text(e.description or "", want.get("description") or "")
               and same_text(e.footer.text or "", footer) for e in msg.embeds)


class DiscordSink(Sink):
    channel = "discord"

    def __init__(self, token: str, channel_ids: dict[str, str], *, api_base: str | None = None,
                 scan_limit: int = 100) -> None:
        self._token = token
        self.channel_ids = {tier: str(cid) for tier, cid in channel_ids.items() if str(cid or "").strip()}
        self.api_base = api_base
        self.scan_limit = scan_limit
        self._client: discord.Client | None = None
        self._login_lock = asyncio.Lock()
        self._channels: dict[int, Any] = {}

    def target_for(self, channel: str, tier: str) -> str | None:
        return self.channel_ids.get(tier)

    async def client(self) -> discord.Client:
        if self._client is not None:
            return self._client
        async with self._login_lock:
            if self._client is None:
                set_api_base(self.api_base)
                c = discord.Client(intents=discord.Intents.none())
                try:
                    await c.login(self._token)
                except Exception as exc:  # noqa: BLE001
                    await c.close()
                    raise map_error(exc) from None
                self._client = c
        return self._client

    async def _text_channel(self, channel_id: str) -> Any:
        cid = int(channel_id)
        ch = self._channels.get(cid)
        if ch is None:
            client = await self.client()
            ch = await client.fetch_channel(cid)
            self._channels[cid] = ch
        return ch

    async def _ensure_thread(self, channel_target: str, root_id: str, name: str) -> str:
        ch = await self._text_channel(channel_target)
        try:
            thread = await ch.get_partial_message(int(root_id)).create_thread(name=(name or "updates")[:100])
            return str(thread.id)
        except discord.HTTPException as exc:
            if exc.code == THREAD_ALREADY_EXISTS:  # created before a crash: same id as the root message
                return str(root_id)
            raise

    async def post(self, channel_target: str, text: str, embed: dict[str, Any] | None = None, *,
                   reply_to: ThreadRef | None = None, idempotency_key: str, title: str | None = None,
                   thread_name: str | None = None, meta: PostMeta | None = None,
                   attachment: str | None = None) -> PostResult:
        try:
            client = await self.client()
            kwargs: dict[str, Any] = {"nonce": idempotency_key,
                                      "allowed_mentions": discord.AllowedMentions.none()}
            if embed is not None:
                kwargs["embed"] = _embed(embed)
            else:
                kwargs["content"] = text
            file = _file(attachment)
            if file is not None:
                kwargs["file"] = file
            if reply_to is None:
                ch = await self._text_channel(channel_target)
                msg = await ch.send(**kwargs)
                return PostResult(str(msg.id))
            thread_id = reply_to.thread_id or await self._ensure_thread(channel_target, reply_to.root_id,
                                                                        thread_name or "updates")
            dest = client.get_partial_messageable(int(thread_id), type=discord.ChannelType.public_thread)
            msg = await dest.send(**kwargs)
            return PostResult(str(msg.id), thread_id=thread_id, reply_to=reply_to.root_id)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a PublishError
            raise map_error(exc) from None

    async def find_existing(self, idempotency_key: str, *, channel_target: str | None = None,
                            reply_to: ThreadRef | None = None, meta: PostMeta | None = None,
                            expected: Payload | None = None) -> PostResult | None:
        if reply_to is not None:
            where = reply_to.thread_id or reply_to.root_id  # a thread has its root message's id
        elif channel_target is not None:
            where = channel_target
        else:
            return None
        try:
            client = await self.client()
            me = client.user.id if client.user is not None else None
            dest = client.get_partial_messageable(int(where))
            async for msg in dest.history(limit=self.scan_limit):
                if _matches(msg, idempotency_key, expected, me):
                    if reply_to is None:
                        return PostResult(str(msg.id))
                    return PostResult(str(msg.id), thread_id=str(where), reply_to=reply_to.root_id)
            return None
        except discord.NotFound:
            return None  # the thread was never created: nothing was posted into it
        except Exception as exc:  # noqa: BLE001 - every failure becomes a PublishError
            raise map_error(exc) from None

    async def close(self) -> None:
        if self._client is not None:
            try:
                await self._client.close()
            finally:
                self._client = None
                self._channels.clear()


class DiscordWebhookSink(Sink):
    """Incoming webhooks, one per tier: simpler setup, no threads, no reconciliation."""

    channel = "discord"

    def __init__(self, webhook_urls: dict[str, str], *, api_base: str | None = None) -> None:
        self._urls = {tier: url for tier, url in webhook_urls.items() if url}
        self.api_base = api_base
        self._session: aiohttp.ClientSession | None = None
        self._hooks: dict[str, discord.Webhook] = {}

    @property
    def threads(self) -> bool:
        return False

    def target_for(self, channel: str, tier: str) -> str | None:
        return tier if tier in self._urls else None

    def _hook(self, tier: str) -> discord.Webhook:
        hook = self._hooks.get(tier)
        if hook is None:
            set_api_base(self.api_base)
            if self._session is None:
                self._session = aiohttp.ClientSession()
            hook = discord.Webhook.from_url(self._urls[tier], session=self._session)
            self._hooks[tier] = hook
        return hook

    async def post(self, channel_target: str, text: str, embed: dict[str, Any] | None = None, *,
                   reply_to: ThreadRef | None = None, idempotency_key: str, title: str | None = None,
                   thread_name: str | None = None, meta: PostMeta | None = None,
                   attachment: str | None = None) -> PostResult:
        try:
            hook = self._hook(channel_target)
            kwargs: dict[str, Any] = {"wait": True, "allowed_mentions": discord.AllowedMentions.none()}
            if embed is not None:
                kwargs["embed"] = _embed(embed)
            else:
                kwargs["content"] = text
            file = _file(attachment)
            if file is not None:
                kwargs["file"] = file
            msg = await hook.send(**kwargs)
            return PostResult(str(msg.id))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a PublishError
            raise map_error(exc) from None

    async def find_existing(self, idempotency_key: str, *, channel_target: str | None = None,
                            reply_to: ThreadRef | None = None, meta: PostMeta | None = None,
                            expected: Payload | None = None) -> PostResult | None:
        return None  # a webhook cannot list channel messages

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._hooks.clear()
