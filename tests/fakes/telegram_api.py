"""A local fake of the Telegram Bot API for python-telegram-bot tests.

    fake = FakeTelegram()
    base = fake.start()                       # http://127.0.0.1:PORT
    app = (ApplicationBuilder().token(TOKEN)
           .base_url(f"{base}/bot").base_file_url(f"{base}/file/bot").build())
    # or: app = fake.application_builder(TOKEN).build();  bot = fake.bot(TOKEN)

Requests arrive as ``POST /bot<token>/<method>`` (form-encoded, multipart for
uploads, or JSON); JSON-encoded form fields (``reply_markup``, ``chat_id``...)
are decoded.  Answers use the envelope ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": N, "description": "...", "parameters": {...}}``.

The fake keeps per-chat message state (ids, text, reply_markup) so edits are
validated like Telegram does ("message to edit not found", "message is not
modified", ``editMessageText`` without ``reply_markup`` drops the inline
keyboard), validates ``parse_mode`` markup (HTML / MarkdownV2 / Markdown,
"can't parse entities"), text/caption lengths and ``callback_data`` (1-64
bytes).  ``getUpdates`` long-polls, honours ``timeout``/``offset``/``limit``
and wakes as soon as a test injects an update.

Test side (every method is thread-safe):

- inject: ``send_command(user_id, chat_id, "/halt reason")``,
  ``send_text(user_id, chat_id, text)``, ``press_button(user_id, chat_id,
  message_id, data)``, ``add_update(update_dict)``
- inspect: ``requests(method=None)``, ``sent_messages(chat_id=None)``,
  ``message(chat_id, message_id)``, ``edits(...)``, ``callback_answers(...)``,
  ``documents(chat_id=None)``, ``deleted_messages()``, ``commands()``
- wait: ``wait_for(predicate, timeout)`` (blocking; NOT from a coroutine on
  the loop running the bot) and ``await wait_for_async(predicate, timeout)``;
  ``predicate`` takes no argument, its truthy result is returned.
  ``wait_for_sent(...)`` / ``wait_for_sent_async(...)`` for the common case.
- faults: ``fail_next(method, kind, count=1, retry_after=1, status=None,
  delay=1.0, description=None)``; kind is ``"429"``, ``"5xx"`` (``status``
  500 default, e.g. 502), ``"slow"`` (answer normally after ``delay`` s),
  ``"drop"`` (close the connection without answer) or ``"error"`` (any
  ``status`` + ``description``, e.g. 403 "Forbidden: bot was blocked by the
  user").  ``method`` is a Bot API method name (case-insensitive) or ``"*"``.
- ``block_chat(chat_id)``: sends to that chat answer 403 like a blocked bot.
- ``reset()``: forget records, messages, queued updates and faults (update and
  message ids keep increasing so a new Application never sees stale offsets).

Pytest: ``telegram_fake_session`` (session scope, started once) and
``telegram_fake`` (function scope, reset before each test) fixtures are
defined here; import them into a conftest.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ._server import FakeLifecycle, FakeServer, Fault, FaultQueue, RequestLog, drop_connection, json_response

__all__ = [
    "DEFAULT_TOKEN",
    "FakeTelegram",
    "TelegramRequest",
    "telegram_fake",
    "telegram_fake_session",
]

DEFAULT_TOKEN = "123456789:TEST-fake-token_abcdefghijklmnopqrstu"
_MAX_TEXT = 4096
_MAX_CAPTION = 1024
_MAX_LONG_POLL = 50.0

# Form fields that are plain strings even when they look like JSON ("123", "true").
_STRING_FIELDS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "inline_message_id",
        "url",
        "description",
        "short_description",
        "title",
        "name",
        "language_code",
        "emoji",
        "query",
        "secret_token",
        "message_effect_id",
        "business_connection_id",
        "file_id",
        "action",
        "document",
        "photo",
        "sticker",
        "video",
        "audio",
        "animation",
        "voice",
        "thumbnail",
    }
)


@dataclass
class TelegramRequest:
    """One request received by the fake."""

    http_method: str
    path: str
    api_method: str  # as sent, e.g. "sendMessage"
    token: str
    params: dict[str, Any]  # decoded fields (JSON fields parsed)
    files: dict[str, dict[str, Any]]  # field -> {filename, content_type, data}
    headers: dict[str, str]
    timestamp: float
    fault: str | None = None  # fault kind applied, if any

    @property
    def method(self) -> str:
        return self.api_method


class _ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


def _bad(description: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {description}")


# --------------------------------------------------------------------------- markup checks
_HTML_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
    "tg-time",
}
_HTML_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^<>]*)?)\s*(/?)>")
_HTML_ENTITY_RE = re.compile(r"&(#[0-9]+|#x[0-9a-fA-F]+|[a-zA-Z]+);")
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_MDV2_RESERVED = set("_*[]()~`>#+-=|{}.!")


def _check_html(text: str) -> tuple[str | None, str]:
    stack: list[str] = []
    plain: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "<":
            m = _HTML_TAG_RE.match(text, i)
            if not m:
                return f'Unsupported start tag "" at byte offset {i}', ""
            closing, name = m.group(1) == "/", m.group(2).lower()
            if name not in _HTML_TAGS:
                kind = "end" if closing else "start"
                return f'Unsupported {kind} tag "{name}" at byte offset {i}', ""
            if closing:
                if not stack or stack[-1] != name:
                    expected = stack[-1] if stack else ""
                    msg = f'Unmatched end tag at byte offset {i}, expected "</{expected}>", found "</{name}>"'
                    return msg, ""
                stack.pop()
            elif m.group(4) != "/":
                stack.append(name)
            i = m.end()
            continue
        if c == "&":
            m = _HTML_ENTITY_RE.match(text, i)
            if m:
                ent = m.group(1)
                if ent.startswith("#"):
                    plain.append("?")
                elif ent in _HTML_NAMED:
                    plain.append(_HTML_NAMED[ent])
                else:
                    return f'Unsupported HTML entity "&{ent};" at byte offset {i}', ""
                i = m.end()
                continue
        plain.append(c)
        i += 1
    if stack:
        return f'Can\'t find end tag corresponding to start tag "{stack[-1]}"', ""
    return None, "".join(plain)


def _find_unescaped(text: str, token: str, start: int) -> int:
    i = start
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text.startswith(token, i):
            return i
        i += 1
    return -1


_MDV2_NAMES = {
    "*": "Bold",
    "_": "Italic",
    "__": "Underline",
    "~": "Strikethrough",
    "||": "Spoiler",
    "[": "TextUrl",
}


def _check_markdown_v2(text: str) -> tuple[str | None, str]:
    stack: list[tuple[str, int]] = []
    plain: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 < n and 1 <= ord(text[i + 1]) <= 126:
                plain.append(text[i + 1])
                i += 2
                continue
            return "Character '\\' is reserved and must be escaped with the preceding '\\'", ""
        if c == "`":
            if text.startswith("```", i):
                end = _find_unescaped(text, "```", i + 3)
                if end < 0:
                    return f"Can't find end of PreCode entity at byte offset {i}", ""
                body = text[i + 3 : end]
                plain.append(body.split("\n", 1)[1] if "\n" in body else body)
                i = end + 3
            else:
                end = _find_unescaped(text, "`", i + 1)
                if end < 0:
                    return f"Can't find end of Code entity at byte offset {i}", ""
                plain.append(text[i + 1 : end])
                i = end + 1
            continue
        token = None
        if text.startswith("__", i):
            token = "__"
        elif text.startswith("||", i):
            token = "||"
        elif c in "*_~":
            token = c
        if token is not None:
            if stack and stack[-1][0] == token:
                stack.pop()
            elif any(t == token for t, _ in stack):
                return f"Can't find end of {_MDV2_NAMES[token]} entity at byte offset {i}", ""
            else:
                stack.append((token, i))
            i += len(token)
            continue
        if c == "[":
            stack.append(("[", i))
            i += 1
            continue
        if c == "!" and i + 1 < n and text[i + 1] == "[":  # custom emoji ![x](tg://emoji?id=)
            i += 1
            continue
        if c == "]":
            if not stack or stack[-1][0] != "[":
                return "Character ']' is reserved and must be escaped with the preceding '\\'", ""
            stack.pop()
            if i + 1 >= n or text[i + 1] != "(":
                return "Character ']' is reserved and must be escaped with the preceding '\\'", ""
            end = _find_unescaped(text, ")", i + 2)
            if end < 0:
                return f"Can't find end of a URL at byte offset {i + 1}", ""
            i = end + 1
            continue
        if c == ">" and (i == 0 or text[i - 1] == "\n"):  # block quotation
            i += 1
            continue
        if c == "*" or c in _MDV2_RESERVED:
            return f"Character '{c}' is reserved and must be escaped with the preceding '\\'", ""
        plain.append(c)
        i += 1
    if stack:
        token, pos = stack[-1]
        return f"Can't find end of {_MDV2_NAMES[token]} entity at byte offset {pos}", ""
    return None, "".join(plain)


def _check_markdown(text: str) -> tuple[str | None, str]:
    plain: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            plain.append(text[i + 1])
            i += 2
            continue
        if c in "*_`":
            tok = "```" if text.startswith("```", i) else c
            end = text.find(tok, i + len(tok))
            if end < 0:
                return f"Can't find end of the entity starting at byte offset {i}", ""
            plain.append(text[i + len(tok) : end])
            i = end + len(tok)
            continue
        if c == "[":
            close = text.find("]", i + 1)
            if close < 0:
                return f"Can't find end of the entity starting at byte offset {i}", ""
            if close + 1 < n and text[close + 1] == "(":
                end = text.find(")", close + 2)
                if end < 0:
                    return f"Can't find end of the entity starting at byte offset {i}", ""
                plain.append(text[i + 1 : close])
                i = end + 1
                continue
        plain.append(c)
        i += 1
    return None, "".join(plain)


def _visible_text(text: str, parse_mode: Any) -> str:
    """Check ``text`` against ``parse_mode``; return the visible text or raise 400."""
    mode = (parse_mode or "").strip().lower() if isinstance(parse_mode, str) else ""
    if not mode:
        return text
    if mode == "html":
        err, plain = _check_html(text)
    elif mode == "markdownv2":
        err, plain = _check_markdown_v2(text)
    elif mode == "markdown":
        err, plain = _check_markdown(text)
    else:
        raise _bad(f"unsupported parse_mode {parse_mode!r}")
    if err:
        raise _bad(f"can't parse entities: {err}")
    return plain


def _validate_reply_markup(markup: Any) -> Any:
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise _bad('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays')
        actions = {
            "url",
            "callback_data",
            "web_app",
            "login_url",
            "switch_inline_query",
            "switch_inline_query_current_chat",
            "switch_inline_query_chosen_chat",
            "copy_text",
            "callback_game",
            "pay",
        }
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not button.get("text"):
                    raise _bad("can't parse inline keyboard button: Text must be non-empty")
                if not actions & set(button):
                    raise _bad(
                        "can't parse inline keyboard button: Text buttons are unallowed in the "
                        "inline keyboard"
                    )
                if "callback_data" in button:
                    data = button["callback_data"]
                    if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64:
                        raise _bad("BUTTON_DATA_INVALID")
    return markup


def _decode_field(name: str, value: str) -> Any:
    if name in _STRING_FIELDS:
        return value
    try:
        return json.loads(value)
    except (ValueError, TypeError):
        return value


# --------------------------------------------------------------------------- the fake
class FakeTelegram(FakeLifecycle):
    """Fake Telegram Bot API server (see module docstring)."""

    def __init__(
        self,
        *,
        bot_username: str = "quanticity_test_bot",
        bot_first_name: str = "Quanticity Test",
        tokens: Iterable[str] | None = None,
        validate_parse_mode: bool = True,
    ) -> None:
        self.server = FakeServer(name="fake-telegram", handler_cancellation=True)
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        self.valid_tokens = set(tokens) if tokens is not None else None
        self.validate_parse_mode = validate_parse_mode
        self.faults = FaultQueue()
        self._log: RequestLog[TelegramRequest] = RequestLog()
        self._cv = threading.Condition(threading.RLock())
        self._update_ids = itertools.count(1)
        self._msg_ids: dict[int | str, itertools.count[int]] = {}
        self._file_ids = itertools.count(1)
        self._updates: list[dict[str, Any]] = []
        self._messages: dict[tuple[int | str, int], dict[str, Any]] = {}
        self._sent: list[dict[str, Any]] = []
        self._edits: list[dict[str, Any]] = []
        self._answers: list[dict[str, Any]] = []
        self._documents: list[dict[str, Any]] = []
        self._deleted: list[dict[str, Any]] = []
        self._commands: dict[str, list[dict[str, Any]]] = {}
        self._open_queries: set[str] = set()
        self._files: dict[str, dict[str, Any]] = {}
        self._blocked: set[int | str] = set()
        self._pollers: set[asyncio.Event] = set()  # touched on the server loop only
        self._confirmed_offset = 0

        app = self.server
        app.add_route("*", "/bot{token}/{method}", self._handle)
        app.add_route("GET", "/file/bot{token}/{path:.+}", self._handle_file)

    # ------------------------------------------------------------------ lifecycle

    @property
    def api_base_url(self) -> str:
        """Value for ``ApplicationBuilder().base_url(...)``."""
        return f"{self.base_url}/bot"

    @property
    def file_base_url(self) -> str:
        """Value for ``ApplicationBuilder().base_file_url(...)``."""
        return f"{self.base_url}/file/bot"

    def application_builder(self, token: str = DEFAULT_TOKEN) -> Any:
        """A ``telegram.ext.ApplicationBuilder`` pointed at this fake."""
        from telegram.ext import ApplicationBuilder

        return ApplicationBuilder().token(token).base_url(self.api_base_url).base_file_url(self.file_base_url)

    def bot(self, token: str = DEFAULT_TOKEN, **kwargs: Any) -> Any:
        """A ``telegram.Bot`` pointed at this fake (use ``async with bot:``)."""
        from telegram import Bot

        return Bot(token, base_url=self.api_base_url, base_file_url=self.file_base_url, **kwargs)

    def bot_id(self, token: str = DEFAULT_TOKEN) -> int:
        head = token.split(":", 1)[0]
        return int(head) if head.isdigit() else 123456789

    def reset(self) -> None:
        """Forget everything recorded/queued (ids keep increasing)."""
        with self._cv:
            self._updates.clear()
            self._messages.clear()
            self._sent.clear()
            self._edits.clear()
            self._answers.clear()
            self._documents.clear()
            self._deleted.clear()
            self._commands.clear()
            self._open_queries.clear()
            self._files.clear()
            self._blocked.clear()
            self._cv.notify_all()
        self._log.clear()
        self.faults.clear()

    # ------------------------------------------------------------------ faults
    def fail_next(
        self,
        method: str,
        kind: str,
        count: int = 1,
        *,
        retry_after: float = 1,
        status: int | None = None,
        delay: float = 1.0,
        description: str | None = None,
    ) -> None:
        """Queue ``count`` faults for the next calls of Bot API ``method`` (or ``"*"``)."""
        kind = kind.lower()
        if kind in ("429", "rate_limit", "flood"):
            kind, status = "429", 429
        elif kind in ("5xx", "500", "502", "503", "504", "server_error"):
            status = status or (int(kind) if kind.isdigit() else 500)
            kind = "5xx"
        elif kind in ("slow", "delay"):
            kind = "slow"
        elif kind in ("drop", "disconnect"):
            kind = "drop"
        elif kind == "error":
            if status is None:
                raise ValueError("kind='error' needs status=")
        else:
            raise ValueError(f"unknown fault kind {kind!r}")
        fault = Fault(kind=kind, status=status, retry_after=retry_after, delay=delay, message=description)
        self.faults.push(method.lower() if method != "*" else "*", fault, count)

    def block_chat(self, chat_id: int | str, blocked: bool = True) -> None:
        """Sends/edits to ``chat_id`` answer 403 "bot was blocked by the user"."""
        with self._cv:
            (self._blocked.add if blocked else self._blocked.discard)(chat_id)

    # ------------------------------------------------------------------ injection
    def _user(self, user_id: int, **extra: Any) -> dict[str, Any]:
        user = {
            "id": user_id,
            "is_bot": False,
            "first_name": extra.pop("first_name", f"User{user_id}"),
            "username": extra.pop("username", f"user{user_id}"),
            "language_code": "en",
        }
        user.update(extra)
        return user

    def _chat(self, chat_id: int | str) -> dict[str, Any]:
        if isinstance(chat_id, int) and chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": f"User{chat_id}"}
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            return {"id": -1000000000001, "type": "channel", "title": chat_id[1:], "username": chat_id[1:]}
        return {"id": chat_id, "type": "supergroup", "title": f"Group {chat_id}"}

    def _next_msg_id(self, chat_id: int | str) -> int:
        with self._cv:
            counter = self._msg_ids.setdefault(chat_id, itertools.count(1))
            return next(counter)

    def add_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue a raw update dict (``update_id`` is assigned if absent)."""
        with self._cv:
            update = dict(update)
            update.setdefault("update_id", next(self._update_ids))
            query = update.get("callback_query")
            if isinstance(query, dict) and query.get("id"):
                self._open_queries.add(str(query["id"]))  # answerable by answerCallbackQuery
            self._updates.append(update)
            self._cv.notify_all()
        self.server.call_soon(self._wake_pollers)
        return update

    def send_text(
        self,
        user_id: int,
        chat_id: int | None = None,
        text: str = "",
        *,
        entities: list[dict[str, Any]] | None = None,
        reply_to_message_id: int | None = None,
        user: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A user ``user_id`` writes ``text`` in ``chat_id`` (default: private chat)."""
        chat_id = user_id if chat_id is None else chat_id
        msg: dict[str, Any] = {
            "message_id": self._next_msg_id(chat_id),
            "date": int(time.time()),
            "chat": self._chat(chat_id),
            "from": user or self._user(user_id),
            "text": text,
        }
        if entities:
            msg["entities"] = entities
        if reply_to_message_id is not None:
            with self._cv:
                replied = self._messages.get((chat_id, reply_to_message_id))
            if replied is not None:
                msg["reply_to_message"] = copy.deepcopy(replied)
        with self._cv:
            self._messages[(chat_id, msg["message_id"])] = msg
        return self.add_update({"message": copy.deepcopy(msg)})

    def send_command(
        self, user_id: int, chat_id: int | None = None, command: str = "/start", **kwargs: Any
    ) -> dict[str, Any]:
        """A user sends ``command`` (e.g. ``"/halt reason"``) with a bot_command entity."""
        if not command.startswith("/"):
            command = "/" + command
        length = len(command.split(maxsplit=1)[0])
        entities = [{"type": "bot_command", "offset": 0, "length": length}]
        return self.send_text(user_id, chat_id, command, entities=entities, **kwargs)

    def press_button(
        self,
        user_id: int,
        chat_id: int | None,
        message_id: int,
        data: str,
        *,
        check_button: bool = True,
    ) -> dict[str, Any]:
        """A user presses an inline button with ``callback_data`` ``data`` on a stored message.

        The update's ``callback_query.message`` is the fake's current copy of the message.
        With ``check_button`` (default) the message must currently carry a button with that
        data (a real client cannot press a button that is not shown).  Returns the update;
        its ``callback_query["id"]`` is what ``answerCallbackQuery`` must answer.
        """
        chat_id = user_id if chat_id is None else chat_id
        with self._cv:
            msg = self._messages.get((chat_id, message_id))
            if msg is None:
                raise KeyError(f"no message {message_id} in chat {chat_id}")
            if check_button:
                rows = (msg.get("reply_markup") or {}).get("inline_keyboard") or []
                datas = [b.get("callback_data") for row in rows for b in row]
                if data not in datas:
                    raise ValueError(f"message {message_id} has no button {data!r}; buttons: {datas}")
            query_id = uuid.uuid4().hex[:16]
            self._open_queries.add(query_id)
            query = {
                "id": query_id,
                "from": self._user(user_id),
                "chat_instance": str(abs(hash(chat_id))),
                "data": data,
                "message": copy.deepcopy(msg),
            }
        return self.add_update({"callback_query": query})

    def pending_updates(self) -> list[dict[str, Any]]:
        with self._cv:
            return copy.deepcopy(self._updates)

    # ------------------------------------------------------------------ inspection
    def requests(self, method: str | None = None) -> list[TelegramRequest]:
        items = self._log.snapshot()
        if method is None:
            return items
        return [r for r in items if r.api_method.lower() == method.lower()]

    def sent_messages(self, chat_id: int | str | None = None) -> list[dict[str, Any]]:
        """Messages the bot sent (as returned at send time), oldest first."""
        with self._cv:
            return [copy.deepcopy(m) for m in self._sent if chat_id is None or m["chat"]["id"] == chat_id]

    def last_sent(self, chat_id: int | str | None = None) -> dict[str, Any] | None:
        sent = self.sent_messages(chat_id)
        return sent[-1] if sent else None

    def message(self, chat_id: int | str, message_id: int) -> dict[str, Any] | None:
        """The current state of a stored message (after edits), None if unknown/deleted."""
        with self._cv:
            msg = self._messages.get((chat_id, message_id))
            return copy.deepcopy(msg) if msg is not None else None

    def edits(self, chat_id: int | str | None = None, message_id: int | None = None) -> list[dict[str, Any]]:
        """Successful edits: ``{method, chat_id, message_id, text, reply_markup, message, time}``."""
        with self._cv:
            return [
                copy.deepcopy(e)
                for e in self._edits
                if (chat_id is None or e["chat_id"] == chat_id)
                and (message_id is None or e["message_id"] == message_id)
            ]

    def callback_answers(self, callback_query_id: str | None = None) -> list[dict[str, Any]]:
        """``answerCallbackQuery`` calls: ``{callback_query_id, text, show_alert, ...}``."""
        with self._cv:
            return [
                dict(a)
                for a in self._answers
                if callback_query_id is None or a["callback_query_id"] == callback_query_id
            ]

    def documents(self, chat_id: int | str | None = None) -> list[dict[str, Any]]:
        """Uploads via sendDocument / sendPhoto:
        ``{method, chat_id, field, filename, content_type, data (bytes|None), file_id, caption, message}``."""
        with self._cv:
            return [dict(d) for d in self._documents if chat_id is None or d["chat_id"] == chat_id]

    def deleted_messages(self) -> list[dict[str, Any]]:
        with self._cv:
            return [dict(d) for d in self._deleted]

    def commands(self, scope: Any = None, language_code: str = "") -> list[dict[str, Any]]:
        """Commands set by setMyCommands for a scope (default scope if None)."""
        with self._cv:
            return copy.deepcopy(self._commands.get(self._commands_key(scope, language_code), []))

    # ------------------------------------------------------------------ waiting
    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Block until ``predicate()`` is truthy and return it; TimeoutError otherwise.

        Never call this from a coroutine running on the loop of the bot under
        test (it would block that loop): use :meth:`wait_for_async` there.
        """
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                result = predicate()
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"telegram fake: condition not met within {timeout}s")
                self._cv.wait(min(remaining, 0.05))

    async def wait_for_async(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() >= deadline:
                raise TimeoutError(f"telegram fake: condition not met within {timeout}s")
            await asyncio.sleep(0.01)

    def _sent_matcher(
        self, chat_id: Any, contains: str | None, after: int
    ) -> Callable[[], dict[str, Any] | None]:
        def pred() -> dict[str, Any] | None:
            for m in self.sent_messages(chat_id)[after:]:
                body = m.get("text") or m.get("caption") or ""
                if contains is None or contains in body:
                    return m
            return None

        return pred

    def wait_for_sent(
        self,
        chat_id: int | str | None = None,
        contains: str | None = None,
        timeout: float = 5.0,
        *,
        after: int = 0,
    ) -> dict[str, Any]:
        """Block until the bot sent a message (to ``chat_id``, containing ``contains``),
        skipping the first ``after`` matching-chat messages."""
        return self.wait_for(self._sent_matcher(chat_id, contains, after), timeout)

    async def wait_for_sent_async(
        self,
        chat_id: int | str | None = None,
        contains: str | None = None,
        timeout: float = 5.0,
        *,
        after: int = 0,
    ) -> dict[str, Any]:
        return await self.wait_for_async(self._sent_matcher(chat_id, contains, after), timeout)

    def _notify(self) -> None:
        with self._cv:
            self._cv.notify_all()

    # ------------------------------------------------------------------ HTTP handlers
    async def _read_params(self, request: web.Request) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        params: dict[str, Any] = {k: _decode_field(k, v) for k, v in request.query.items()}
        files: dict[str, dict[str, Any]] = {}
        if request.method == "POST" and request.can_read_body:
            ctype = request.content_type
            if ctype == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    body = None
                if isinstance(body, dict):
                    params.update(body)
            elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        files[key] = {
                            "filename": value.filename,
                            "content_type": value.content_type,
                            "data": value.file.read(),
                        }
                    else:
                        text = (
                            value.decode("utf-8", "replace")
                            if isinstance(value, bytes | bytearray)
                            else value
                        )
                        params[key] = _decode_field(key, text)
        return params, files

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        api_method = request.match_info["method"]
        params, files = await self._read_params(request)
        fault = self.faults.pop(api_method.lower())
        rec = TelegramRequest(
            http_method=request.method,
            path=request.path,
            api_method=api_method,
            token=token,
            params=params,
            files={k: {**v, "size": len(v["data"])} for k, v in files.items()},
            headers=dict(request.headers),
            timestamp=time.time(),
            fault=fault.kind if fault else None,
        )
        self._log.append(rec)
        self._notify()

        if fault is not None:
            if fault.kind == "drop":
                return await drop_connection(request)
            if fault.kind == "slow":
                await asyncio.sleep(fault.delay)
            elif fault.kind == "429":
                ra = fault.retry_after
                ra_out: float = int(ra) if float(ra).is_integer() else ra
                return self._error(
                    _ApiError(
                        429,
                        fault.message or f"Too Many Requests: retry after {ra_out}",
                        {"retry_after": ra_out},
                    ),
                    headers={"Retry-After": str(max(1, int(ra)))},
                )
            else:  # 5xx / error
                status = fault.status or 500
                return self._error(_ApiError(status, fault.message or _default_description(status)))

        if self.valid_tokens is not None and token not in self.valid_tokens:
            return self._error(_ApiError(401, "Unauthorized"))
        handler = getattr(self, f"_m_{api_method.lower()}", None)
        try:
            if handler is None:
                result = self._m_fallback(api_method, params, files, token)
            elif asyncio.iscoroutinefunction(handler):
                result = await handler(params, files, token)
            else:
                result = handler(params, files, token)
        except _ApiError as exc:
            return self._error(exc)
        finally:
            self._notify()
        return json_response({"ok": True, "result": result})

    def _error(self, exc: _ApiError, headers: dict[str, str] | None = None) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": exc.code, "description": exc.description}
        if exc.parameters:
            body["parameters"] = exc.parameters
        return json_response(body, status=exc.code, headers=headers)

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        self._log.append(
            TelegramRequest(
                http_method="GET",
                path=request.path,
                api_method="<file>",
                token=request.match_info["token"],
                params={"file_path": path},
                files={},
                headers=dict(request.headers),
                timestamp=time.time(),
            )
        )
        with self._cv:
            entry = next((f for f in self._files.values() if f["file_path"] == path), None)
        if entry is None or entry.get("data") is None:
            return self._error(_ApiError(404, "Not Found"))
        return web.Response(body=entry["data"], headers={"Content-Type": "application/octet-stream"})

    async def _wait_updates(self, timeout: float) -> None:
        ev = asyncio.Event()
        self._pollers.add(ev)
        try:
            await asyncio.wait_for(ev.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            self._pollers.discard(ev)

    def _wake_pollers(self) -> None:
        for ev in list(self._pollers):
            ev.set()

    # ------------------------------------------------------------------ helpers for methods
    @staticmethod
    def _chat_id(params: dict[str, Any]) -> int | str:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad("chat_id is empty")
        if isinstance(chat_id, str) and not chat_id.startswith("@"):
            try:
                return int(chat_id)
            except ValueError:
                raise _bad("chat not found") from None
        return chat_id

    def _check_blocked(self, chat_id: int | str) -> None:
        with self._cv:
            if chat_id in self._blocked:
                raise _ApiError(403, "Forbidden: bot was blocked by the user")

    def _bot_user(self, token: str) -> dict[str, Any]:
        return {
            "id": self.bot_id(token),
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    def _new_bot_message(
        self, chat_id: int | str, token: str, params: dict[str, Any], **content: Any
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "message_id": self._next_msg_id(chat_id),
            "date": int(time.time()),
            "chat": self._chat(chat_id),
            "from": self._bot_user(token),
        }
        msg.update(content)
        if params.get("message_thread_id") is not None:
            msg["message_thread_id"] = params["message_thread_id"]
        reply = params.get("reply_parameters") or (
            {"message_id": params["reply_to_message_id"]} if params.get("reply_to_message_id") else None
        )
        if isinstance(reply, dict) and reply.get("message_id") is not None:
            with self._cv:
                replied = self._messages.get((chat_id, reply["message_id"]))
            if replied is not None:
                msg["reply_to_message"] = copy.deepcopy(replied)
            elif not reply.get("allow_sending_without_reply"):
                raise _bad("message to be replied not found")
        markup = _validate_reply_markup(params.get("reply_markup"))
        if markup is not None and "inline_keyboard" in markup:
            msg["reply_markup"] = markup
        with self._cv:
            self._messages[(chat_id, msg["message_id"])] = msg
            self._sent.append(copy.deepcopy(msg))
        return copy.deepcopy(msg)

    def _text_param(self, params: dict[str, Any], key: str, limit: int, required: bool) -> str | None:
        text = params.get(key)
        if text is None or text == "":
            if required:
                raise _bad("message text is empty")
            return None
        if not isinstance(text, str):
            text = str(text)
        visible = _visible_text(text, params.get("parse_mode")) if self.validate_parse_mode else text
        if len(visible) > limit:
            raise _bad("message is too long" if key == "text" else "message caption is too long")
        if required and not visible.strip():
            raise _bad("message text is empty")
        return text

    def _editable(self, params: dict[str, Any], action: str = "edit") -> dict[str, Any] | None:
        """The stored message addressed by chat_id+message_id, or None for inline messages."""
        if params.get("inline_message_id"):
            return None
        chat_id = self._chat_id(params)
        self._check_blocked(chat_id)
        message_id = params.get("message_id")
        if message_id is None:
            raise _bad("message identifier is not specified")
        with self._cv:
            msg = self._messages.get((chat_id, int(message_id)))
        if msg is None:
            raise _bad(f"message to {action} not found")
        return msg

    def _record_edit(self, method: str, msg: dict[str, Any], **fields: Any) -> dict[str, Any]:
        msg["edit_date"] = max(int(time.time()), msg["date"])
        entry = {
            "method": method,
            "chat_id": msg["chat"]["id"],
            "message_id": msg["message_id"],
            "text": msg.get("text"),
            "caption": msg.get("caption"),
            "reply_markup": copy.deepcopy(msg.get("reply_markup")),
            "message": copy.deepcopy(msg),
            "time": time.time(),
        }
        entry.update(fields)
        self._edits.append(entry)
        return copy.deepcopy(msg)

    # ------------------------------------------------------------------ Bot API methods
    def _m_getme(self, params: dict[str, Any], files: Any, token: str) -> Any:
        return {
            **self._bot_user(token),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _m_deletewebhook(self, params: dict[str, Any], files: Any, token: str) -> Any:
        if params.get("drop_pending_updates"):
            with self._cv:
                self._updates.clear()
        return True

    def _m_setwebhook(self, params: dict[str, Any], files: Any, token: str) -> Any:
        return True

    def _m_getwebhookinfo(self, params: dict[str, Any], files: Any, token: str) -> Any:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": len(self._updates)}

    def _m_logout(self, params: dict[str, Any], files: Any, token: str) -> Any:
        return True

    def _m_close(self, params: dict[str, Any], files: Any, token: str) -> Any:
        return True

    async def _m_getupdates(self, params: dict[str, Any], files: Any, token: str) -> Any:
        offset = int(params.get("offset") or 0)
        limit = max(1, min(100, int(params.get("limit") or 100)))
        timeout = min(float(params.get("timeout") or 0), _MAX_LONG_POLL)
        allowed = params.get("allowed_updates") or None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self._cv:
                if offset > 0:
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                elif offset < 0:
                    self._updates = self._updates[offset:]
                ready = [u for u in self._updates if not allowed or any(k in u for k in allowed)][:limit]
            remaining = deadline - loop.time()
            if ready or remaining <= 0:
                return copy.deepcopy(ready)
            await self._wait_updates(remaining)

    def _m_sendmessage(self, params: dict[str, Any], files: Any, token: str) -> Any:
        chat_id = self._chat_id(params)
        self._check_blocked(chat_id)
        text = self._text_param(params, "text", _MAX_TEXT, required=True)
        return self._new_bot_message(chat_id, token, params, text=text)

    def _upload(
        self, method: str, field_name: str, params: dict[str, Any], files: dict[str, Any], token: str
    ) -> Any:
        chat_id = self._chat_id(params)
        self._check_blocked(chat_id)
        caption = self._text_param(params, "caption", _MAX_CAPTION, required=False)
        value = params.get(field_name)
        upload = files.get(field_name)
        if upload is None and isinstance(value, str) and value.startswith("attach://"):
            upload = files.get(value[len("attach://") :])
        if upload is None and not value:
            raise _bad(f"there is no {field_name} in the request")
        n = next(self._file_ids)
        file_id = f"FAKE{field_name.upper()}{n:06d}" if upload is not None else str(value)
        data = upload["data"] if upload is not None else None
        size = len(data) if data is not None else 0
        filename = upload["filename"] if upload is not None else None
        content_type = upload["content_type"] if upload is not None else None
        with self._cv:
            self._files[file_id] = {
                "file_id": file_id,
                "file_unique_id": f"U{n:08d}",
                "file_size": size,
                "file_path": f"{field_name}s/file_{n}{_ext(filename)}",
                "data": data,
            }
        if field_name == "photo":
            content: dict[str, Any] = {
                "photo": [
                    {
                        "file_id": file_id,
                        "file_unique_id": f"U{n:08d}",
                        "width": 1280,
                        "height": 720,
                        "file_size": size,
                    }
                ]
            }
        else:
            content = {
                "document": {
                    "file_id": file_id,
                    "file_unique_id": f"U{n:08d}",
                    "file_name": filename or "document",
                    "mime_type": content_type or "application/octet-stream",
                    "file_size": size,
                }
            }
        if caption is not None:
            content["caption"] = caption
        msg = self._new_bot_message(chat_id, token, params, **content)
        with self._cv:
            self._documents.append(
                {
                    "method": method,
                    "chat_id": chat_id,
                    "field": field_name,
                    "filename": filename,
                    "content_type": content_type,
                    "data": data,
                    "file_id": file_id,
                    "caption": caption,
                    "message": copy.deepcopy(msg),
                    "time": time.time(),
                }
            )
        return msg

    def _m_senddocument(self, params: dict[str, Any], files: Any, token: str) -> Any:
        return self._upload("sendDocument", "document", params, files, token)

    def _m_sendphoto(self, params: dict[str, Any], files: Any, token: str) -> Any:
        return self._upload("sendPhoto", "photo", params, files, token)

    def _m_getfile(self, params: dict[str, Any], files: Any, token: str) -> Any:
        with self._cv:
            entry = self._files.get(str(params.get("file_id")))
        if entry is None:
            raise _bad("invalid file_id")
        return {k: entry[k] for k in ("file_id", "file_unique_id", "file_size", "file_path")}

    def _m_editmessagetext(self, params: dict[str, Any], files: Any, token: str) -> Any:
        text = self._text_param(params, "text", _MAX_TEXT, required=True)
        markup = _validate_reply_markup(params.get("reply_markup"))
        with self._cv:
            msg = self._editable(params)
            if msg is None:
                return True
            if msg["from"].get("id") != self.bot_id(token):
                raise _bad("message can't be edited")
            if "text" not in msg:
                raise _bad("there is no text in the message to edit")
            # Telegram drops the inline keyboard when reply_markup is omitted.
            if msg.get("text") == text and msg.get("reply_markup") == markup:
                raise _bad(
                    "message is not modified: specified new message content and reply markup "
                    "are exactly the same as a current content and reply markup of the message"
                )
            msg["text"] = text
            msg.pop("entities", None)
            if markup is None:
                msg.pop("reply_markup", None)
            else:
                msg["reply_markup"] = markup
            return self._record_edit("editMessageText", msg)

    def _m_editmessagecaption(self, params: dict[str, Any], files: Any, token: str) -> Any:
        caption = self._text_param(params, "caption", _MAX_CAPTION, required=False)
        markup = _validate_reply_markup(params.get("reply_markup"))
        with self._cv:
            msg = self._editable(params)
            if msg is None:
                return True
            if "text" in msg:
                raise _bad("there is no caption in the message to edit")
            if msg.get("caption") == caption and msg.get("reply_markup") == markup:
                raise _bad("message is not modified")
            if caption is None:
                msg.pop("caption", None)
            else:
                msg["caption"] = caption
            if markup is None:
                msg.pop("reply_markup", None)
            else:
                msg["reply_markup"] = markup
            return self._record_edit("editMessageCaption", msg)

    def _m_editmessagereplymarkup(self, params: dict[str, Any], files: Any, token: str) -> Any:
        markup = _validate_reply_markup(params.get("reply_markup"))
        with self._cv:
            msg = self._editable(params)
            if msg is None:
                return True
            if msg.get("reply_markup") == markup or (
                markup is not None and not markup.get("inline_keyboard") and not msg.get("reply_markup")
            ):
                raise _bad(
                    "message is not modified: specified new message content and reply markup "
                    "are exactly the same as a current content and reply markup of the message"
                )
            if markup is None or not markup.get("inline_keyboard"):
                msg.pop("reply_markup", None)
            else:
                msg["reply_markup"] = markup
            return self._record_edit("editMessageReplyMarkup", msg)

    def _m_deletemessage(self, params: dict[str, Any], files: Any, token: str) -> Any:
        chat_id = self._chat_id(params)
        message_id = int(params.get("message_id") or 0)
        with self._cv:
            msg = self._messages.pop((chat_id, message_id), None)
            if msg is None:
                raise _bad("message to delete not found")
            self._deleted.append(
                {"chat_id": chat_id, "message_id": message_id, "message": msg, "time": time.time()}
            )
        return True

    def _m_answercallbackquery(self, params: dict[str, Any], files: Any, token: str) -> Any:
        qid = str(params.get("callback_query_id") or "")
        text = params.get("text")
        if text is not None and len(str(text)) > 200:
            raise _bad("MESSAGE_TOO_LONG")
        with self._cv:
            if qid not in self._open_queries:
                raise _bad("query is too old and response timeout expired or query ID is invalid")
            self._open_queries.discard(qid)
            self._answers.append(
                {
                    "callback_query_id": qid,
                    "text": text,
                    "show_alert": bool(params.get("show_alert", False)),
                    "url": params.get("url"),
                    "cache_time": params.get("cache_time"),
                    "time": time.time(),
                }
            )
        return True

    @staticmethod
    def _commands_key(scope: Any, language_code: Any) -> str:
        scope = scope or {"type": "default"}
        return json.dumps(scope, sort_keys=True) + "|" + (language_code or "")

    def _m_setmycommands(self, params: dict[str, Any], files: Any, token: str) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        if len(commands) > 100:
            raise _bad("BOT_COMMANDS_TOO_MUCH")
        for cmd in commands:
            name = cmd.get("command", "") if isinstance(cmd, dict) else ""
            desc = cmd.get("description", "") if isinstance(cmd, dict) else ""
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(desc) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        with self._cv:
            self._commands[self._commands_key(params.get("scope"), params.get("language_code"))] = commands
        return True

    def _m_getmycommands(self, params: dict[str, Any], files: Any, token: str) -> Any:
        with self._cv:
            key = self._commands_key(params.get("scope"), params.get("language_code"))
            return copy.deepcopy(self._commands.get(key, []))

    def _m_deletemycommands(self, params: dict[str, Any], files: Any, token: str) -> Any:
        with self._cv:
            self._commands.pop(self._commands_key(params.get("scope"), params.get("language_code")), None)
        return True

    def _m_fallback(self, api_method: str, params: dict[str, Any], files: Any, token: str) -> Any:
        low = api_method.lower()
        if low.startswith("send") and low not in ("sendchataction", "sendmediagroup") and "chat_id" in params:
            chat_id = self._chat_id(params)
            self._check_blocked(chat_id)
            return self._new_bot_message(chat_id, token, params)
        return True


def _default_description(status: int) -> str:
    return {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        409: "Conflict: terminated by other getUpdates request",
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }.get(status, f"Error {status}")


def _ext(filename: str | None) -> str:
    if filename and "." in filename:
        return "." + filename.rsplit(".", 1)[1]
    return ""


# --------------------------------------------------------------------------- pytest fixtures
try:
    import pytest
except ImportError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def telegram_fake_session() -> Any:
        """The process-wide FakeTelegram (``FakeTelegram.shared()``)."""
        return FakeTelegram.shared()

    @pytest.fixture
    def telegram_fake(telegram_fake_session: FakeTelegram) -> Any:
        """The session FakeTelegram, reset before each test."""
        telegram_fake_session.reset()
        yield telegram_fake_session
        telegram_fake_session.reset()
