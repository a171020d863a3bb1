"""Message texts: tier views (redaction by construction) + Jinja2 templates.

Redaction is structural: each tier's template receives ONLY the view built for that
tier, assembled field by field from the event (never "premium minus some keys"),
and the Environment uses ``StrictUndefined``, so a template that reaches for a
field its tier does not have fails loudly instead of leaking or printing blanks.

What each tier gets (PositionEvent):

- premium: contract, fill price, size, stop, targets, triggers, the overseer's
  explanation, account risk %, confidence, analytics numbers, realized P&L,
  strategy, raw exit reason, result %.
- basic: contract and fill price, horizon, stop / targets only as "set" (updates:
  a sentence from stop vs entry - above / at breakeven / below - never its price), exit
  reason as a category word (stop, target, ...), result %; no size, no analytics,
  no explanation, no account risk.
- free (Discord free, X, Reddit): underlying and direction only (``calls``/``puts``,
  bullish/bearish); for the result, win / loss / flat wording and - decision - the
  whole-number % return (``free_result_pct``, default on): a % return reveals no
  strike, price, size or analytics and basic subscribers see it anyway, so it is
  not premium-only. Never a strike, a price, an expiry or a size.

Outside text (explanation, triggers, reasons, analytics keys, report summaries) is
data: control characters and line breaks are removed, ``@`` mentions are defused,
length is capped, and Discord/Reddit templates escape markdown (``|md``), so it can
never add a line, a field, a ping or formatting to a message.

No internal identifier reaches a subscriber: no idempotency key or event id is
rendered, and analytics entries that are ids (``snapshot_id``, any ``*_id``, values
shaped like a ULID, UUID or long hex key) are left out of the premium view. Crash
reconciliation recognises a post by its exact content instead; what makes two
otherwise equal teasers (same underlying, same direction) differ is ``stamp``, the
event's New York time to the second, which every position template shows.

Report posts: ``report_base_url`` set -> every post links ``<base>/<file name>``;
Discord posts also carry the tier's page as an attachment (up to
``report_attach_max_bytes``; a larger or missing file is left off, logged and
counted). Without a URL the X / Reddit / Discord texts never name a bare file:
they say where the page is (``report_where``, e.g. "in the free channel of our
Discord").
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bot.distribution.report_posts import (
    REPORT_ATTACH_MAX_BYTES,
    REPORT_WHERE,
    file_name,
    report_attachment,
    report_path,
    report_view,
)
from bot.distribution.text import clean, md
from bot.distribution.update_view import StopContext, basic_update_fields, premium_update_fields
from bot.publishers.base import ATTACHMENTS_SKIPPED
from core.bus.events import NY, PositionEvent, ReportEvent
from core.format.jinja import register as register_number_filters
from core.format.numbers import (
    PLACEHOLDER,
    compact,
    contract_label,
    money,
    num,
    plural,
    signed_money,
    signed_pct,
)
from core.format.numbers import pct as percent
from core.pnl import outcome as pnl_outcome
from core.pnl import return_pct as pnl_return_pct

log = logging.getLogger("quanticity.distributor.render")

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates" / "messages"

# which (channel, tier) pairs get a message for each event kind
ROUTES: dict[str, tuple[tuple[str, str], ...]] = {
    "entry": (("discord", "premium"), ("discord", "basic"), ("discord", "free"), ("x", "free"), ("reddit", "free")),
    "stop_moved": (("discord", "premium"), ("discord", "basic")),
    "partial_exit": (("discord", "premium"), ("discord", "basic")),
    "closed": (("discord", "premium"), ("discord", "basic"), ("discord", "free"), ("x", "free"), ("reddit", "free")),
    "report": (("discord", "premium"), ("discord", "basic"), ("discord", "free"), ("x", "free"), ("reddit", "free")),
}

EMBED_LIMITS = {"title": 256, "description": 4096, "field_name": 256, "field_value": 1024, "footer": 2048}

# ------------------------------------------------------------------ numbers
def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def is_bullish(ev: PositionEvent) -> bool:
    d = (ev.direction or "").lower()
    if d in ("bullish", "long", "up"):
        return True
    if d in ("bearish", "short", "down"):
        return False
    return str(ev.right).upper().startswith("C")


def reason_category(reason: str) -> str:
    r = (reason or "").lower()
    for words, label in ((("trail",), "trailing stop"), (("stop",), "stop"), (("target", "tp"), "target"),
                         (("time", "expir", "eod", "close", "session"), "time exit"),
                         (("manual", "admin", "flatten", "halt"), "manual exit")):
        if any(w in r for w in words):
            return label
    return "exit"


def result_pct(ev: PositionEvent, entry_qty: int | None) -> float | None:
    """The trade's return (``core.pnl.return_pct``: realized P&L after every commission / entry
    cost of the whole position); None when the contracts bought are not known."""
    if not entry_qty or entry_qty <= 0:
        return None
    return pnl_return_pct(ev.realized_pnl, ev.entry_price, entry_qty)


def outcome_word(ev: PositionEvent, pct: float | None = None) -> str:
    """win / loss / flat by the trade's realized P&L (``core.pnl.outcome``); ``pct`` is derived
    from that same P&L, so it never decides."""
    return pnl_outcome(ev.realized_pnl)


# ------------------------------------------------------------------ views
def validate_position(ev: PositionEvent) -> str | None:
    """Why an event cannot be published (bad numbers), or None."""
    if not _finite(ev.strike) or ev.strike <= 0:
        return "bad strike"
    if not _finite(ev.entry_price) or ev.entry_price <= 0:
        return "bad entry price"
    if ev.price is not None and (not _finite(ev.price) or ev.price < 0):
        return "bad fill price"
    if ev.kind in ("entry", "partial_exit", "closed") and ev.price is None:
        return "fill without a price"
    if ev.stop is not None and (not _finite(ev.stop) or ev.stop < 0):
        return "bad stop"
    if any(not _finite(t) or t < 0 for t in ev.targets):
        return "bad target"
    if not _finite(ev.realized_pnl):
        return "bad realized pnl"
    if ev.qty < 0 or ev.qty_open < 0:
        return "negative size"
    if not str(ev.symbol).strip() or str(ev.right).upper()[:1] not in ("C", "P"):
        return "bad contract"
    return None


def _symbol(ev: PositionEvent) -> str:
    return re.sub(r"[^A-Z0-9.^]", "", str(ev.symbol).upper())[:12] or "?"


def _contract(ev: PositionEvent) -> str:
    return contract_label(_symbol(ev), ev.expiry, ev.strike, ev.right)


def _horizon(ev: PositionEvent) -> str:
    h = clean(ev.horizon, 12).lower()
    return {"0dte": "0DTE", "1dte": "1DTE", "swing": "swing"}.get(h, h or "—")


def free_view(ev: PositionEvent, entry_qty: int | None, show_pct: bool) -> dict[str, Any]:
    bull = is_bullish(ev)
    view: dict[str, Any] = {
        "symbol": re.sub(r"[^A-Z.^]", "", _symbol(ev)) or "the index",  # no digits can reach free text
        "bullish": bull,
        "direction": "bullish" if bull else "bearish",
        "side": "calls" if bull else "puts",
    }
    if ev.kind == "closed":
        pct = result_pct(ev, entry_qty)
        view["outcome"] = outcome_word(ev, pct)
        view["result_pct"] = signed_pct(pct, 0) if (show_pct and pct is not None) else ""
    return view


def basic_view(ev: PositionEvent, entry_qty: int | None) -> dict[str, Any]:
    bull = is_bullish(ev)
    view: dict[str, Any] = {
        "symbol": _symbol(ev),
        "contract": _contract(ev),
        "bullish": bull,
        "direction": "bullish" if bull else "bearish",
        "side": "calls" if bull else "puts",
        "horizon": _horizon(ev),
        "fill": money(ev.price) if ev.price is not None else "",
        "entry_fill": money(ev.entry_price),
        "stop_set": ev.stop is not None,
        "targets_set": bool(ev.targets),
        "exit_reason": reason_category(ev.reason),
        "still_open": ev.qty_open > 0,
        **basic_update_fields(ev),
    }
    if ev.kind == "closed":
        pct = result_pct(ev, entry_qty)
        view["outcome"] = outcome_word(ev, pct)
        view["result_pct"] = signed_pct(pct, 0)
    return view


_ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
_HEX_KEY = re.compile(r"[0-9a-fA-F]{24,}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def is_internal_id(key: str, value: Any) -> bool:
    """An analytics entry that is an internal identifier (never shown to subscribers):
    a key named ``id`` / ``*_id`` / ``*_ids``, or a text value holding a ULID, UUID or long hex key."""
    k = str(key).strip().lower()
    if k in ("id", "ids") or k.endswith(("_id", "_ids", "-id")):
        return True
    if isinstance(value, str):
        return any(p.search(value) for p in (_ULID, _HEX_KEY, _UUID))
    return False


def premium_view(ev: PositionEvent, entry_qty: int | None, stop_ctx: StopContext | None = None) -> dict[str, Any]:
    """Everything; updates also say what changed (update_view.premium_update_fields)."""
    bull = is_bullish(ev)
    pct = result_pct(ev, entry_qty)
    analytics = []
    for k in sorted(ev.analytics):
        v = ev.analytics[k]
        if v is None or is_internal_id(k, v):
            continue
        analytics.append((clean(k, 40), compact(v) if _finite(v) else clean(v, 60)))
    return {
        "symbol": _symbol(ev),
        "contract": _contract(ev),
        "bullish": bull,
        "direction": "bullish" if bull else "bearish",
        "side": "calls" if bull else "puts",
        "horizon": _horizon(ev),
        "strategy": clean(ev.strategy, 40) or "—",
        "fill": money(ev.price) if ev.price is not None else "—",
        "entry_fill": money(ev.entry_price),
        "qty": ev.qty,
        "qty_open": ev.qty_open,
        "size": plural(ev.qty, "contract"),
        "open_size": plural(ev.qty_open, "contract"),
        "stop": money(ev.stop) if ev.stop is not None else "none",
        "targets": " / ".join(money(t) for t in ev.targets) or "none",
        "triggers": ", ".join(clean(t, 80) for t in ev.triggers[:12]) or "—",
        "explanation": clean(ev.explanation, 900),
        "reason": clean(ev.reason, 200) or "—",
        "account_risk": percent(ev.account_risk_pct, False, 2),
        "confidence": num(ev.confidence, 0),
        "analytics": analytics,
        "analytics_line": ", ".join(f"{k} {v}" for k, v in analytics)[:1000] or "—",
        "realized_pnl": signed_money(ev.realized_pnl),
        "result_pct": signed_pct(pct, 1),
        "exit_move_pct": (signed_pct((ev.price - ev.entry_price) / ev.entry_price * 100.0, 1)
                          if ev.price is not None else PLACEHOLDER),
        "outcome": outcome_word(ev, pct),
        **premium_update_fields(ev, stop_ctx, money, signed_money, clean),
    }


# ------------------------------------------------------------------ templates
@dataclass(frozen=True)
class Rendered:
    text: str
    embed: dict[str, Any] | None = None
    title: str | None = None  # Reddit submission title
    thread_name: str | None = None  # Discord thread created from the root
    attachment: str | None = None  # path of the file the post carries (Discord report page)

    def payload_hash(self) -> str:
        content: dict[str, Any] = {"text": self.text, "embed": self.embed, "title": self.title}
        if self.attachment:
            content["attachment"] = file_name(self.attachment)
        blob = json.dumps(content, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def event_stamp(ev: PositionEvent | ReportEvent) -> str:
    """The event's New York time to the second, e.g. ``Dec 03, 10:31:07 ET``: tells the reader when
    it happened (the lower tiers read it minutes later) and keeps every post's text unique, which
    is how a post is recognised after a crash (and what X's duplicate-status rule needs)."""
    return ev.dt.astimezone(NY).strftime("%b %d, %H:%M:%S ET")


def make_env(templates_dir: Path | None = None) -> Environment:
    env = Environment(loader=FileSystemLoader(str(templates_dir or TEMPLATES_DIR)), undefined=StrictUndefined,
                      autoescape=False, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)
    env.filters["md"] = md
    return register_number_filters(env)


def _cap(s: Any, n: int) -> str:
    s = str(s).strip()
    return s if len(s) <= n else s[: n - 1] + "…"


def _build_embed(module: Any) -> dict[str, Any]:
    fields = []
    for name, value in list(getattr(module, "fields", []))[:25]:
        fields.append({"name": _cap(name, EMBED_LIMITS["field_name"]) or "—",
                       "value": _cap(value, EMBED_LIMITS["field_value"]) or "—", "inline": False})
    embed: dict[str, Any] = {"title": _cap(module.title, EMBED_LIMITS["title"]), "fields": fields,
                             "color": int(getattr(module, "color", 0))}
    desc = _cap(getattr(module, "description", "") or "", EMBED_LIMITS["description"])
    if desc:
        embed["description"] = desc
    footer = _cap(getattr(module, "footer", "") or "", EMBED_LIMITS["footer"])
    if footer:
        embed["footer"] = {"text": footer}
    return embed


class Renderer:
    """Renders ``templates/messages/<channel>/<tier>/<event>.j2``.

    A template's output is the message text; top-level ``{% set %}`` variables add
    structure: ``embed = true`` + ``title``/``description``/``fields``/``footer``/``color``
    (Discord premium), ``title`` (Reddit submission), ``thread_name`` (Discord thread).
    """

    def __init__(self, templates_dir: Path | None = None, *, free_result_pct: bool = True,
                 report_base_url: str | None = None, report_where: str = REPORT_WHERE,
                 report_attach_max_bytes: int = REPORT_ATTACH_MAX_BYTES) -> None:
        self.env = make_env(templates_dir)
        self.free_result_pct = free_result_pct
        self.report_base_url = report_base_url
        self.report_where = report_where
        self.report_attach_max_bytes = report_attach_max_bytes

    def _render(self, channel: str, tier: str, event: str, view: dict[str, Any], stamp: str,
                attachment: str | None = None) -> Rendered:
        tmpl = self.env.get_template(f"{channel}/{tier}/{event}.j2")
        module = tmpl.make_module({"t": view, "stamp": stamp, "tier": tier, "channel": channel})
        text = re.sub(r"\n{3,}", "\n\n", str(module)).strip()
        embed = _build_embed(module) if getattr(module, "embed", False) else None
        title = getattr(module, "title", None) if channel == "reddit" else None
        thread_name = getattr(module, "thread_name", None)
        return Rendered(text=text, embed=embed, title=_cap(title, 300) if title else None,
                        thread_name=_cap(thread_name, 100) if thread_name else None, attachment=attachment)

    def position(self, ev: PositionEvent, channel: str, tier: str, idem: str,
                 entry_qty: int | None = None, stop_ctx: StopContext | None = None) -> Rendered:
        if tier == "premium":
            view = premium_view(ev, entry_qty, stop_ctx)
        elif tier == "basic":
            view = basic_view(ev, entry_qty)
        else:
            view = free_view(ev, entry_qty, self.free_result_pct)
        return self._render(channel, tier, ev.kind, view, event_stamp(ev))

    def report(self, ev: ReportEvent, channel: str, tier: str, idem: str) -> Rendered | None:
        """A tier's report post; on Discord it carries the page itself when the file allows."""
        path = report_path(ev, tier)
        if path is None:
            return None
        attachment, why = (None, "")
        if channel == "discord":
            attachment, why = report_attachment(path, self.report_attach_max_bytes)
            if attachment is None:
                ATTACHMENTS_SKIPPED.labels(channel, why).inc()
                log.warning("report %s %s page %s not attached (%s): the post %s", ev.report_id or ev.id, tier,
                            file_name(path), why, "links it" if self.report_base_url else "says so")
        view = report_view(ev, tier, self.report_base_url, where=self.report_where,
                           attached=attachment is not None, too_large=why == "too_large")
        if view is None:
            return None
        return self._render(channel, tier, "report", view, event_stamp(ev), attachment)

