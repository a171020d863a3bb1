"""Render the local outbox as a subscriber would see it: one self-contained HTML page.

One column per channel and tier (Discord premium / basic / free, X, Reddit), messages
time-stamped in New York time, replies nested under the message they are threaded
under (Discord thread, X reply chain, Reddit comment). Inline CSS, no scripts, no
external assets; every text is HTML-escaped.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("discord", "premium", "Discord · premium"),
    ("discord", "basic", "Discord · basic"),
    ("discord", "free", "Discord · free"),
    ("x", "free", "X"),
    ("reddit", "free", "Reddit"),
)

CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
background:#1e1f22;color:#dbdee1}
header{padding:14px 20px;background:#111214;border-bottom:1px solid #2b2d31}
header h1{margin:0;font-size:18px;color:#fff}
header p{margin:4px 0 0;color:#949ba4;font-size:12px}
.board{display:flex;gap:12px;padding:12px;align-items:flex-start;overflow-x:auto}
.col{flex:1 0 300px;max-width:420px;background:#2b2d31;border-radius:8px;padding:8px}
.col h2{margin:4px 6px 10px;font-size:13px;text-transform:uppercase;letter-spacing:.06em;color:#b5bac1}
.col h2 span{float:right;color:#80848e;font-weight:normal}
.msg{background:#313338;border-radius:6px;padding:8px 10px;margin:0 0 8px;border-left:3px solid #5865f2}
.msg.closed{border-left-color:#23a55a}.msg.stop_moved{border-left-color:#f0b232}
.msg.partial_exit{border-left-color:#c27c0e}.msg.report{border-left-color:#9b59b6}
.meta{font-size:11px;color:#949ba4;margin-bottom:4px}
.meta b{color:#dbdee1;font-weight:600}
.ev{display:inline-block;padding:0 6px;border-radius:8px;background:#404249;color:#dbdee1;margin-right:6px}
.text{white-space:pre-wrap;word-wrap:break-word}
.replies{margin:8px 0 0 8px;padding-left:10px;border-left:2px solid #4e5058}
.replies .msg{background:#383a40;margin-bottom:6px}
.orphan{font-size:11px;color:#f23f43}
.empty{color:#80848e;font-style:italic;padding:6px}
"""


def _load(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
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


_ESCAPED = re.compile(r"\\([\\*_~`|>#\[\]()<^])")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_ITALIC = re.compile(r"(?<![*\w])\*(?=\S)(.+?)(?<=\S)\*(?![*\w])")


def _display(text: str) -> str:
    """Message text as the platform shows it: **bold**, *italic*, markdown escapes removed; HTML-safe."""
    held: list[str] = []

    def hold(m: re.Match[str]) -> str:
        held.append(m.group(1))
        return f"\x00{len(held) - 1}\x00"

    t = _ESCAPED.sub(hold, text.replace("\x00", ""))
    t = html.escape(t)
    t = _BOLD.sub(r"<strong>\1</strong>", t)
    t = _ITALIC.sub(r"<em>\1</em>", t)
    return re.sub("\x00(\\d+)\x00", lambda m: html.escape(held[int(m.group(1))]), t)


def _when(ts: str) -> str:
    try:
        dt = datetime.fromisoformat(ts)
    except (TypeError, ValueError):
        return html.escape(str(ts))
    return f"{dt.strftime('%b %d')} · {dt.strftime('%H:%M:%S')} ET"


def _msg(rec: dict[str, Any], children: dict[str, list[dict[str, Any]]], depth: int = 0,
         orphan: bool = False) -> str:
    event = str(rec.get("event", ""))
    mid = html.escape(str(rec["message_id"]), quote=True)
    corr = html.escape(str(rec.get("correlation_id", ""))[:12])
    parts = [
        f'<div class="msg {html.escape(event, quote=True)}" id="m-{mid}">',
        f'<div class="meta"><span class="ev">{html.escape(event.replace("_", " "))}</span>'
        + f'<b>{_when(str(rec.get("ts", "")))}</b> · {corr}</div>',
    ]
    if orphan:
        parts.append('<div class="orphan">reply to a message not in this outbox</div>')
    parts.append(f'<div class="text">{_display(str(rec.get("text", "")))}</div>')
    kids = children.get(str(rec["message_id"]), [])
    if kids and depth < 50:
        parts.append('<div class="replies">')
        parts.extend(_msg(k, children, depth + 1) for k in kids)
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


def render_outbox_html(outbox_jsonl_path: str | os.PathLike[str], html_path: str | os.PathLike[str]) -> str:
    """Write ``html_path`` from ``outbox_jsonl_path``; returns the HTML path."""
    records = _load(outbox_jsonl_path)
    columns: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        columns[(str(rec.get("channel", "")), str(rec.get("tier", "")))].append(rec)
    order = [(c, t, label) for c, t, label in COLUMNS]
    for key in sorted(k for k in columns if k not in {(c, t) for c, t, _ in COLUMNS}):
        order.append((key[0], key[1], f"{key[0]} · {key[1]}"))
    body = []
    for channel, tier, label in order:
        recs = sorted(columns.get((channel, tier), []), key=lambda r: (str(r.get("ts", "")), str(r["message_id"])))
        ids = {str(r["message_id"]) for r in recs}
        children: dict[str, list[dict[str, Any]]] = defaultdict(list)
        roots: list[tuple[dict[str, Any], bool]] = []
        for r in recs:
            parent = r.get("reply_to")
            if parent and str(parent) in ids and str(parent) != str(r["message_id"]):
                children[str(parent)].append(r)
            else:
                roots.append((r, bool(parent)))
        inner = "".join(_msg(r, children, orphan=o) for r, o in roots) or '<div class="empty">no messages</div>'
        body.append(f'<section class="col"><h2>{html.escape(label)}<span>{len(recs)}</span></h2>{inner}</section>')
    first = min((str(r.get("ts", "")) for r in records), default="")
    subtitle = (f"{len(records)} messages · first {html.escape(_when(first))}" if records else "empty outbox")
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>Quanticity outbox</title><style>{CSS}</style></head><body>"
            f"<header><h1>Quanticity outbox</h1><p>{subtitle} · what each subscriber tier saw, "
            "replies nested under their parent</p></header>"
            f"<main class=\"board\">{''.join(body)}</main></body></html>\n")
    out = Path(html_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return str(out)
