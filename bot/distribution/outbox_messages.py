"""One outbox record as its platform shows it, for ``outbox.html``.

- a Discord embed (premium): color bar, title, description, fields, footer - from the
  record's ``embed`` key (the embed as posted); plain Discord messages as text;
- a Reddit submission with its title (``title`` key); comments as comments;
- an X post as text;
- an ``attachment`` (a report file) as a link when the record has one.

Every text is HTML-escaped; Discord/Reddit markdown ``**bold**`` / ``*italic*`` is shown as
such. Replies carry ``data-reply-to`` and a link to the message they answer.
"""

from __future__ import annotations

import html
import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

_ESCAPED = re.compile(r"\\([\\*_~`|>#\[\]()<^])")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_ITALIC = re.compile(r"(?<![*\w])\*(?=\S)(.+?)(?<=\S)\*(?![*\w])")
_SAFE_URL = re.compile(r"^(?:https?://|[\w.][\w./-]*$)")


def load_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    p = Path(path)
    if not p.exists():
        return out
    with p.open(encoding="utf-8") as fh:
        for raw in fh:
            raw = raw.strip()
            if not raw:
                continue
            try:
                rec = json.loads(raw)
            except ValueError:
                continue  # a torn line: skipped
            if isinstance(rec, dict) and rec.get("message_id"):
                out.append(rec)
    return out


def display(text: Any) -> str:
    """Message text as the platform shows it: **bold**, *italic*, markdown escapes removed; HTML-safe."""
    held: list[str] = []

    def hold(m: re.Match[str]) -> str:
        held.append(m.group(1))
        return f"\x00{len(held) - 1}\x00"

    t = _ESCAPED.sub(hold, str(text if text is not None else "").replace("\x00", ""))
    t = html.escape(t)
    t = _BOLD.sub(r"<strong>\1</strong>", t)
    t = _ITALIC.sub(r"<em>\1</em>", t)
    return re.sub("\x00(\\d+)\x00", lambda m: html.escape(held[int(m.group(1))]), t)


def clock(ts: Any, seconds: bool = True) -> str:
    try:
        dt = datetime.fromisoformat(str(ts))
    except (TypeError, ValueError):
        return html.escape(str(ts))
    return dt.strftime("%H:%M:%S" if seconds else "%H:%M")


def _color(value: Any) -> str:
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0x5865F2
    return f"#{max(0, min(n, 0xFFFFFF)):06x}"


def embed_html(embed: dict[str, Any]) -> str:
    parts = [f'<div class="embed" style="border-left-color:{_color(embed.get("color"))}">']
    if embed.get("title"):
        parts.append(f'<div class="embed-title">{display(embed["title"])}</div>')
    if embed.get("description"):
        parts.append(f'<div class="embed-desc">{display(embed["description"])}</div>')
    fields = [f for f in embed.get("fields") or [] if isinstance(f, dict)]
    if fields:
        parts.append('<div class="embed-fields">')
        for f in fields:
            wide = "" if f.get("inline") else " wide"
            parts.append(f'<div class="embed-field{wide}"><div class="fname">{display(f.get("name", ""))}</div>'
                         f'<div class="fvalue">{display(f.get("value", ""))}</div></div>')
        parts.append("</div>")
    footer = embed.get("footer")
    if isinstance(footer, dict) and footer.get("text"):
        parts.append(f'<div class="embed-footer">{display(footer["text"])}</div>')
    parts.append("</div>")
    return "".join(parts)


def attachment_html(att: Any, base_dir: Path | None) -> str:
    """A report file attached to the message: a link (relative to the page when it is beside it)."""
    if isinstance(att, dict):
        target = str(att.get("url") or att.get("path") or "")
        name = str(att.get("name") or target.rsplit("/", 1)[-1])
    else:
        target = str(att or "")
        name = target.rsplit("/", 1)[-1]
    if not target:
        return ""
    if base_dir is not None and os.path.isabs(target):
        rel = os.path.relpath(target, base_dir)
        target = Path(rel).as_posix() if not rel.startswith("..") else ""
    label = html.escape(name or "attachment")
    if not target or not _SAFE_URL.match(target):
        return f'<div class="attach">📎 {label}</div>'
    return f'<div class="attach">📎 <a href="{html.escape(target, quote=True)}">{label}</a></div>'


def message_html(rec: dict[str, Any], parent: dict[str, Any] | None, base_dir: Path | None) -> str:
    event = str(rec.get("event", ""))
    mid = html.escape(str(rec["message_id"]), quote=True)
    reply_to = rec.get("reply_to")
    attrs = f' data-reply-to="{html.escape(str(reply_to), quote=True)}"' if reply_to else ""
    embed = rec.get("embed")
    look = " has-embed" if isinstance(embed, dict) else ""
    parts = [f'<div class="msg {html.escape(event, quote=True)}{look}" id="m-{mid}"{attrs}>',
             (f'<div class="meta"><span class="ev">{html.escape(event.replace("_", " "))}</span>'
              f'<b>{clock(rec.get("ts"))}</b></div>')]
    if reply_to:
        if parent is not None:
            what = "comment on" if rec.get("channel") == "reddit" else "reply in the thread of"
            parts.append(f'<div class="thread">↳ <a href="#m-{html.escape(str(reply_to), quote=True)}">{what} '
                         f'{html.escape(str(parent.get("event", "")).replace("_", " "))} '
                         f'{clock(parent.get("ts"), False)}</a></div>')
        else:
            parts.append('<div class="orphan">reply to a message not in this outbox</div>')
    if rec.get("title"):
        parts.append(f'<div class="reddit-title">{display(rec["title"])}</div>')
    if isinstance(embed, dict):
        parts.append(embed_html(embed))
    else:
        parts.append(f'<div class="text">{display(rec.get("text", ""))}</div>')
    if rec.get("attachment"):
        parts.append(attachment_html(rec["attachment"], base_dir))
    parts.append("</div>")
    return "".join(parts)
