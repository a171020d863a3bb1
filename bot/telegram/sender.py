"""Sends what the outbox holds, in order per chat, at the configured per-chat rate.

One pump task per bot (started by the service) runs :meth:`Sender.flush` whenever it is
kicked (something was queued) or a due time comes. Per message:

- success: removed from the queue, idempotency marker set, the card's message id recorded
  (one MULTI). A long text is sent part by part; each part is its own request and the
  queue remembers the next part, so a restart resumes without re-sending earlier parts.
- 429 ``RetryAfter``: the chat is blocked for exactly ``retry_after`` and its messages move
  behind the block (not counted as a failure, never dropped).
- network errors, timeouts, 5xx: exponential backoff (``backoff_base_s`` .. ``backoff_max_s``),
  retried forever.
- 400 "message is not modified": done. "message to edit not found": the edit is sent as a
  new message. "can't parse entities": re-sent as plain text.
- other rejections (400 / 403 / 401): backoff; after ``max_attempts`` the message moves to
  the dead-letter stream ``k:dead_letter:telegram`` with the error (kept, not dropped) and
  an AuditEvent is written.

Delivery is at-least-once: a crash between Telegram's answer and the MULTI re-sends that
message (Telegram has no idempotency key for sendMessage).
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

from prometheus_client import Counter
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    ReplyParameters,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError

from bot.telegram.cards import CardStore
from bot.telegram.outbox import Outbox, Outgoing, parse_member
from bot.telegram.splitter import split_html
from core.bus.bus import Bus
from core.bus.events import AuditEvent, encode
from core.clock.clock import Clock
from core.config.model import TelegramSettings

log = logging.getLogger("quanticity.telegram.sender")

SENT = Counter("quanticity_telegram_requests_total", "Telegram outbound requests by op and outcome",
               ["op", "outcome"])

BATCH = 200
IDLE_POLL_S = 2.0
_TAGS = re.compile(r"<[^<>]+>")


def retry_after_s(exc: RetryAfter) -> float:
    raw: Any = getattr(exc, "_retry_after", None)
    if raw is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = exc.retry_after
    return raw.total_seconds() if isinstance(raw, timedelta) else float(raw)


def markup(buttons: list[list[tuple[str, str]]] | None) -> InlineKeyboardMarkup | None:
    if not buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=data) for label, data in row]
                                 for row in buttons])


def plain_text(html_text: str) -> str:
    return html.unescape(_TAGS.sub("", html_text))


def _chat(chat_id: int | str) -> int | str:
    if isinstance(chat_id, str) and chat_id.lstrip("-").isdigit():
        return int(chat_id)
    return chat_id


class _Done:
    """Outcome of one request: finished, or the chat must wait until ``until_ms``."""

    def __init__(self, until_ms: int | None = None) -> None:
        self.until_ms = until_ms


class Sender:
    def __init__(self, bus: Bus, outbox: Outbox, cards: CardStore, clock: Clock,
                 settings: TelegramSettings) -> None:
        self.bus = bus
        self.outbox = outbox
        self.cards = cards
        self.clock = clock
        self.settings = settings
        self.bot: Bot | None = None
        self.interval_ms = int(1000 / settings.per_chat_messages_per_s)
        self._slot: dict[str, int] = {}
        self._kick = asyncio.Event()
        self._lock = asyncio.Lock()
        self._stopping = False
        self.delivered = 0

    # ------------------------------------------------------------------ pump
    def kick(self) -> None:
        self._kick.set()

    def stop(self) -> None:
        self._stopping = True
        self._kick.set()

    async def run(self, ready: asyncio.Event) -> None:
        await ready.wait()
        while not self._stopping:
            self._kick.clear()
            try:
                wait_s = await self.flush()
            except Exception:
                log.exception("telegram outbox flush failed")
                wait_s = 1.0
            if self._stopping:
                break
            if wait_s <= 0:
                await asyncio.sleep(0)
                continue
            try:
                await asyncio.wait_for(self._kick.wait(), timeout=min(wait_s, IDLE_POLL_S))
            except TimeoutError:
                pass

    async def flush(self) -> float:
        """Send everything due now; returns seconds until the next thing could be sent."""
        async with self._lock:
            now = self.clock.ms()
            rows = await self.outbox.due(now, BATCH)
            waiting: dict[str, int] = {}
            for member, _score in rows:
                if self._stopping:
                    break
                chat, _seq, idem = parse_member(member)
                if chat in waiting:
                    continue
                slot = self._slot.get(chat, 0)
                if slot > self.clock.ms():
                    waiting[chat] = slot
                    continue
                msg = await self.outbox.load(idem)
                if msg is None:  # payload gone (finished by an earlier pass)
                    await self.outbox.redis.zrem(self.outbox.k_queue, member)
                    continue
                done = await self._attempt(chat, member, msg)
                if done.until_ms is not None:
                    waiting[chat] = done.until_ms
            now = self.clock.ms()
            left = await self.outbox.due(now, BATCH)
            if any(parse_member(m)[0] not in waiting for m, _s in left):
                return 0.0  # more due now (a batch limit, or a message converted to another form)
            future = await self.outbox.redis.zrangebyscore(self.outbox.k_queue, f"({now}", "+inf", start=0,
                                                           num=1, withscores=True)
            candidates = list(waiting.values()) + [int(s) for _m, s in future]
            if not candidates:
                return IDLE_POLL_S
            return max(0.0, (min(candidates) - now) / 1000.0)

    # ------------------------------------------------------------------ one request
    async def _attempt(self, chat: str, member: str, msg: Outgoing) -> _Done:
        assert self.bot is not None
        try:
            message_id, media, finished = await self._perform(msg)
        except RetryAfter as exc:
            wait_ms = max(1, int(retry_after_s(exc) * 1000))
            until = self.clock.ms() + wait_ms
            SENT.labels(msg.op, "retry_after").inc()
            log.warning("telegram 429 chat=%s op=%s: waiting %.1fs", chat, msg.op, wait_ms / 1000)
            await self.outbox.block_chat(chat, until)
            return _Done(until)
        except BadRequest as exc:
            text = str(exc).lower()
            if "not modified" in text:
                SENT.labels(msg.op, "not_modified").inc()
                await self._finish(chat, member, msg, None, "")
                return _Done(self._after_send(chat))
            if msg.op in ("edit", "edit_card") and ("not found" in text or "can't be edited" in text):
                log.warning("telegram edit chat=%s impossible (%s): sending as a new message", chat, exc)
                self._as_new_message(msg)
                await self._save(msg)
                return _Done(None)
            if "can't parse entities" in text and not msg.plain:
                log.error("telegram rejected the markup of %s (%s): sending plain text", msg.idem, exc)
                msg.plain = True
                await self._save(msg)
                return _Done(None)
            return await self._failed(chat, member, msg, exc, counted=True)
        except NetworkError as exc:  # timeouts, dropped connections, 5xx
            return await self._failed(chat, member, msg, exc, counted=False)
        except (TelegramError, OSError) as exc:  # 403, 401, chat migrated, unreadable file...
            return await self._failed(chat, member, msg, exc, counted=True)
        SENT.labels(msg.op, "ok").inc()
        if finished:
            await self._finish(chat, member, msg, message_id, media)
        else:
            msg.part += 1
            msg.attempts = 0
            await self._save(msg)
        return _Done(self._after_send(chat))

    def _after_send(self, chat: str) -> int:
        slot = self.clock.ms() + self.interval_ms
        self._slot[chat] = slot
        return slot

    def _as_new_message(self, msg: Outgoing) -> None:
        msg.op = "send"
        msg.parts = split_html(msg.text, self.outbox.max_chars)
        msg.part = 0
        msg.message_id = None
        if msg.edit_card and not msg.record_card:
            msg.record_card = msg.edit_card
        msg.edit_card = None

    async def _perform(self, msg: Outgoing) -> tuple[int | None, str, bool]:
        """One Bot API request for ``msg``: (message id, media, whether msg is complete)."""
        bot = self.bot
        assert bot is not None
        chat = _chat(msg.chat_id)
        mode = None if msg.plain else ParseMode.HTML
        kb = markup(msg.buttons)
        if msg.op == "edit_card":
            rec = await self.cards.get(msg.edit_card or "")
            if not rec or not rec.get("message_id"):
                self._as_new_message(msg)  # the card never made it out: say it as a new message
            else:
                mid = int(rec["message_id"])
                if rec.get("media") == "document":
                    await bot.edit_message_caption(chat_id=chat, message_id=mid, caption=self._text(msg.text, msg),
                                                   parse_mode=mode, reply_markup=kb)
                else:
                    await bot.edit_message_text(self._text(msg.text, msg), chat_id=chat, message_id=mid,
                                                parse_mode=mode, reply_markup=kb,
                                                link_preview_options=LinkPreviewOptions(is_disabled=True))
                return mid, rec.get("media", "text"), True
        if msg.op == "edit":
            await bot.edit_message_text(self._text(msg.text, msg), chat_id=chat, message_id=int(msg.message_id or 0),
                                        parse_mode=mode, reply_markup=kb,
                                        link_preview_options=LinkPreviewOptions(is_disabled=True))
            return msg.message_id, "text", True
        if msg.op == "document":
            path = Path(msg.path or "")
            try:
                data = await asyncio.to_thread(path.read_bytes) if msg.path else None
            except OSError as exc:
                log.warning("report file %s unreadable (%s): sending the summary only", path.name, exc)
                data = None
            if data is None:
                self._as_new_message(msg)
            else:
                doc = await bot.send_document(
                    chat, document=data, filename=msg.filename or path.name, caption=self._text(msg.caption, msg),
                    parse_mode=mode, reply_markup=kb, disable_notification=msg.silent)
                return doc.message_id, "document", True
        # send: one part per request
        if not msg.parts:
            msg.parts = split_html(msg.text, self.outbox.max_chars)
        idx = min(msg.part, len(msg.parts) - 1)
        last = idx == len(msg.parts) - 1
        reply = None
        if idx == 0 and msg.reply_card:
            card_mid = await self.cards.message_id(msg.reply_card)
            if card_mid:
                reply = ReplyParameters(message_id=card_mid, allow_sending_without_reply=True)
        sent = await bot.send_message(chat, self._text(msg.parts[idx], msg), parse_mode=mode,
                                      reply_markup=kb if last else None, disable_notification=msg.silent,
                                      reply_parameters=reply,
                                      link_preview_options=LinkPreviewOptions(is_disabled=True))
        return sent.message_id, "text", last

    @staticmethod
    def _text(text: str, msg: Outgoing) -> str:
        return plain_text(text) if msg.plain else text

    async def _save(self, msg: Outgoing) -> None:
        await self.outbox.redis.hset(self.outbox.k_payloads, msg.idem, msg.to_json())

    async def _finish(self, chat: str, member: str, msg: Outgoing, message_id: int | None, media: str) -> None:
        pipe = self.outbox.redis.pipeline(transaction=True)
        pipe.zrem(self.outbox.k_queue, member)
        pipe.hdel(self.outbox.k_payloads, msg.idem)
        pipe.set(self.outbox.sent_key(msg.idem), "1", ex=self.settings.sent_ttl_s)
        if msg.record_card and message_id:
            self.cards.record_sent_on(pipe, msg.record_card, message_id, media)
        await pipe.execute()
        self.delivered += 1

    async def _failed(self, chat: str, member: str, msg: Outgoing, exc: BaseException, *, counted: bool) -> _Done:
        msg.attempts += 1
        kind = type(exc).__name__
        SENT.labels(msg.op, kind).inc()
        if counted and msg.attempts >= self.settings.max_attempts:
            await self._dead_letter(chat, member, msg, f"{kind}: {exc}")
            return _Done(None)
        delay = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2 ** (msg.attempts - 1))
        until = self.clock.ms() + int(delay * 1000)
        log.warning("telegram %s chat=%s op=%s attempt %d failed (%s: %s); retry in %.1fs", msg.idem, chat,
                    msg.op, msg.attempts, kind, exc, delay)
        await self._save(msg)
        await self.outbox.block_chat(chat, until)
        return _Done(until)

    async def _dead_letter(self, chat: str, member: str, msg: Outgoing, error: str) -> None:
        log.error("telegram %s to chat %s dead-lettered after %d attempts: %s", msg.idem, chat, msg.attempts, error)
        audit = self.bus.make(AuditEvent, actor="telegram", action="telegram.dead_letter",
                              detail={"idem": msg.idem, "chat_id": str(chat), "op": msg.op, "error": error[:300]})
        pipe = self.outbox.redis.pipeline(transaction=True)
        pipe.xadd(self.outbox.k_dead, {"idem": msg.idem, "chat_id": str(chat), "error": error[:500],
                                       "payload": msg.to_json()}, maxlen=10_000, approximate=True)
        pipe.zrem(self.outbox.k_queue, member)
        pipe.hdel(self.outbox.k_payloads, msg.idem)
        pipe.set(self.outbox.sent_key(msg.idem), "dead", ex=self.settings.sent_ttl_s)
        pipe.xadd(self.bus.stream_key(audit), encode(audit), maxlen=self.bus.maxlen, approximate=True)
        await pipe.execute()
