"""Render a day's outbox as its readers saw it: one self-contained HTML page.

A common time axis: one row per New York minute in which anything was posted, one cell per
reader - the operator's Telegram (the approval cards, when the journal is given; see
``outbox_cards``), Discord premium / basic / free, X, Reddit - so the +60 s / +300 s tier
delays read across a row. Premium messages are drawn as the Discord embed they are (color
bar, title, fields, footer), Reddit submissions with their title; a reply links to the message
it answers. Sized for a laptop: the board scrolls inside its own box (both ways), the page
itself never scrolls sideways. Inline CSS, no scripts, no external assets; every text escaped.
"""

from __future__ import annotations

import html
import os
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.distribution.outbox_cards import CARD_TYPES, AdminItem, CardSettings, admin_items
from bot.distribution.outbox_messages import load_records, message_html
from core.bus.events import NY
from core.format.numbers import plural
from core.runtime.demo_figures import rejections
from core.runtime.journal_read import read_events

ADMIN = ("telegram", "admin", "Telegram · admin (operator)")
# share of the board's width (the rest is the time column); other channels get an equal share
WIDTHS = {("telegram", "admin"): 24, ("discord", "premium"): 22, ("discord", "basic"): 15, ("discord", "free"): 13,
          ("x", "free"): 12, ("reddit", "free"): 14}
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("discord", "premium", "Discord · premium"),
    ("discord", "basic", "Discord · basic"),
    ("discord", "free", "Discord · free"),
    ("x", "free", "X"),
    ("reddit", "free", "Reddit"),
)

CSS = """
*{box-sizing:border-box}
html,body{margin:0;max-width:100%;overflow-x:hidden}
body{font:13px/1.4 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
background:#1e1f22;color:#dbdee1}
header{padding:10px 16px;background:#111214;border-bottom:1px solid #2b2d31}
header h1{margin:0;font-size:17px;color:#fff}
header p{margin:3px 0 0;color:#949ba4;font-size:12px;max-width:100%;overflow-wrap:anywhere}
.board{max-width:100%;height:calc(100vh - 96px);min-height:320px;overflow:auto;margin:0}
table.grid{border-collapse:separate;border-spacing:0;table-layout:fixed;width:100%;min-width:1180px}
.grid th{position:sticky;top:0;z-index:2;background:#2b2d31;color:#b5bac1;font-size:11px;text-transform:uppercase;
letter-spacing:.05em;text-align:left;padding:6px 8px;border-bottom:1px solid #404249}
.grid th span{float:right;color:#80848e;font-weight:normal}
.grid th.t,.grid td.t{position:sticky;left:0;z-index:1;width:58px;background:#232428}
.grid th.t{z-index:3}
.grid td{vertical-align:top;padding:5px 6px;border-bottom:1px solid #2b2d31;min-width:0;overflow-wrap:anywhere}
.grid td.t{color:#949ba4;font-variant-numeric:tabular-nums;font-weight:600}
.grid td.admin{background:#17212b}
.msg{background:#313338;border-radius:6px;padding:6px 8px;margin:0 0 6px;border-left:3px solid #5865f2}
.msg.closed{border-left-color:#23a55a}.msg.stop_moved{border-left-color:#f0b232}
.msg.partial_exit{border-left-color:#c27c0e}.msg.report{border-left-color:#9b59b6}
.msg.has-embed{background:none;border-left:0;padding:2px 0}
.meta{font-size:11px;color:#949ba4;margin-bottom:3px}
.meta b{color:#dbdee1;font-weight:600}
.ev{display:inline-block;padding:0 6px;border-radius:8px;background:#404249;color:#dbdee1;margin-right:6px}
.text{white-space:pre-wrap;overflow-wrap:anywhere}
.thread{font-size:11px;margin-bottom:3px}
a{color:#00a8fc}
.orphan{font-size:11px;color:#f23f43}
.embed{background:#2b2d31;border-left:4px solid #5865f2;border-radius:4px;padding:6px 8px}
.embed-title{font-weight:700;color:#fff;margin-bottom:3px}
.embed-desc{white-space:pre-wrap;margin-bottom:4px;color:#dbdee1}
.embed-fields{display:flex;flex-wrap:wrap;gap:2px 10px}
.embed-field{flex:1 1 45%;min-width:0}.embed-field.wide{flex-basis:100%}
.fname{font-weight:700;font-size:11.5px;color:#fff}.fvalue{white-space:pre-wrap;overflow-wrap:anywhere}
.embed-footer{font-size:10.5px;color:#949ba4;margin-top:4px}
.reddit-title{font-weight:700;font-size:14px;color:#fff;margin-bottom:3px}
.attach{margin-top:4px;font-size:12px}
.tg{background:#182533;border-radius:8px;padding:6px 8px;margin:0 0 6px;border:1px solid #2b5278}
.tg.reply{border-style:dashed}
.tg-head{font-size:11px;color:#6d8fb3;margin-bottom:3px}
.tg-bubble{background:#2b5278;color:#f5f5f5;border-radius:8px;padding:6px 8px;white-space:pre-wrap;font-size:12px;
overflow-wrap:anywhere}
.tg-bubble code{background:#1d3a57;padding:0 3px;border-radius:3px;font-size:11px}
.tg-buttons{display:flex;gap:4px;margin-top:4px}
.tg-buttons button{flex:1;min-width:0;background:#2f4a65;color:#e8f1fa;border:0;border-radius:6px;padding:4px 2px;
font:inherit;font-size:11.5px;cursor:not-allowed;opacity:.85}
.tg-outcome{margin-top:5px;font-weight:600;font-size:12px}
.tg-outcome.approved{color:#4fd17c}.tg-outcome.rejected,.tg-outcome.refused{color:#f2767a}
.tg-outcome.expired,.tg-outcome.pending{color:#f0b232}
.tg-doc{font-size:12px;margin-bottom:3px}
details summary{cursor:pointer;font-size:11px;color:#8fb1d4;margin-top:3px}
details .tg-bubble{margin-top:4px;opacity:.9}
"""


def _minute_of_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(NY).isoformat()[:16]


def _minute_of_ts(ts: Any) -> str:
    try:
        return datetime.fromisoformat(str(ts)).astimezone(NY).isoformat()[:16]
    except (TypeError, ValueError):
        return "?"


def _columns(records: list[dict[str, Any]], with_admin: bool) -> list[tuple[str, str, str]]:
    known = {(c, t) for c, t, _ in COLUMNS}
    extra = sorted({(str(r.get("channel", "")), str(r.get("tier", ""))) for r in records} - known)
    return ([ADMIN] if with_admin else []) + list(COLUMNS) + [(c, t, f"{c} · {t}") for c, t in extra]


def _board(records: list[dict[str, Any]], items: list[AdminItem] | None, base_dir: Path) -> str:
    cols = _columns(records, items is not None)
    cells: dict[str, dict[tuple[str, str], list[str]]] = defaultdict(lambda: defaultdict(list))
    counts: dict[tuple[str, str], int] = defaultdict(int)
    by_id = {str(r["message_id"]): r for r in records}
    for r in sorted(records, key=lambda r: (str(r.get("ts", "")), str(r["message_id"]))):
        key = (str(r.get("channel", "")), str(r.get("tier", "")))
        parent = by_id.get(str(r.get("reply_to"))) if r.get("reply_to") else None
        cells[_minute_of_ts(r.get("ts"))][key].append(message_html(r, parent, base_dir))
        counts[key] += 1
    for it in items or []:
        cells[_minute_of_ms(it.ts)][ADMIN[:2]].append(it.html)
        counts[ADMIN[:2]] += 1
    head = "".join(f'<th class="{"admin" if (c, t) == ADMIN[:2] else ""}">{html.escape(label)}'
                   f'<span>{counts[(c, t)]}</span></th>' for c, t, label in cols)
    rows, day = [], ""
    for minute in sorted(cells):
        label = minute[11:16] or html.escape(minute)
        if minute[:10] != day and day:
            label = f"{minute[5:10]}<br>{label}"
        day = minute[:10]
        tds = "".join(f'<td class="{"admin" if (c, t) == ADMIN[:2] else ""}">{"".join(cells[minute][(c, t)])}</td>'
                      for c, t, _ in cols)
        rows.append(f'<tr id="t-{html.escape(minute.replace(":", ""), quote=True)}"><td class="t">{label}</td>{tds}</tr>')
    body = "".join(rows) or f'<tr><td class="t"></td><td colspan="{len(cols)}">no messages</td></tr>'
    share = {(c, t): WIDTHS.get((c, t), 12) for c, t, _ in cols}
    total = sum(share.values())
    colgroup = '<colgroup><col style="width:58px">' + "".join(
        f'<col style="width:{100 * share[(c, t)] / total:.2f}%">' for c, t, _ in cols) + "</colgroup>"
    return (f'<main class="board"><table class="grid">{colgroup}<thead><tr><th class="t">ET</th>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></main>")


def _rejected_line(events: list[Any]) -> str:
    r = rejections(events)
    if not r["by_overseer"]:
        return ""
    top = ", ".join(f"{html.escape(k)} {v}" for k, v in list(r["rules"].items())[:3])
    return (f" · {plural(r['by_overseer'], 'signal')} rejected by the overseer's rules never reach the admin "
            f"(top reasons: {top})")


def render_outbox_html(outbox_jsonl_path: str | os.PathLike[str], html_path: str | os.PathLike[str],
                       journal_path: str | os.PathLike[str] | None = None,
                       cards: CardSettings | None = None) -> str:
    """Write ``html_path`` from ``outbox_jsonl_path`` (and the admin cards from ``journal_path``
    when given); returns the HTML path."""
    out = Path(html_path)
    records = load_records(outbox_jsonl_path)
    items, note = None, ""
    if journal_path is not None:
        read = read_events(journal_path, (*CARD_TYPES, "review.verdict"))
        items = admin_items(read.events, cards, out.parent)
        note = _rejected_line(read.events)
        if read.skipped:
            note += f" · {plural(read.skipped, 'unreadable journal line')} skipped"
    day = min((str(r.get("ts", "")) for r in records), default="")[:10]
    subtitle = (f"{day} · {len(records)} subscriber messages" if records else "no subscriber messages")
    if items is not None:
        subtitle += f" · {sum(1 for i in items if i.kind != 'reply')} approval cards"
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>Quanticity outbox</title><style>{CSS}</style></head><body>"
            f"<header><h1>Quanticity · what the operator and each subscriber tier saw</h1><p>{subtitle}"
            f"{note} · one row per New York minute; the operator's Telegram buttons are drawn inert</p></header>"
            f"{_board(records, items, out.parent)}</body></html>\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return str(out)
