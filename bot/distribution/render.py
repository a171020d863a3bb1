"""Message texts: tier views (redaction by construction) + Jinja2 templates.

Redaction is structural: each tier's template receives ONLY the view built for that
tier, assembled field by field from the event (never "premium minus some keys"),
and the Environment uses ``StrictUndefined``, so a template that reaches for a
field its tier does not have fails loudly instead of leaking or printing blanks.

What each tier gets (PositionEvent):

- premium: contract, fill price, size, stop, targets, triggers, the overseer's
  explanation, account risk %, confidence, analytics numbers, realized P&L,
  strategy, raw exit reason, result %.
- basic: contract and fill price, horizon, stop / targets only as "set", exit
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
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bot.publishers.base import ref_tag
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

# ------------------------------------------------------------------ outside text
_CTRL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_WS = re.compile(r"\s+")
_MD = re.compile(r"([\\*_~`|>#\[\]()<^])")


def clean(value: Any, limit: int = 300) -> str:
    """Outside text as one safe line: no control chars / line breaks, defused @mentions, capped."""
    s = _CTRL.sub(" ", str(value if value is not None else ""))
    s = _WS.sub(" ", s).strip()
    s = s.replace("@", "@\u200b")
    if len(s) > limit:
        s = s[: max(0, limit - 1)].rstrip() + "…"
    return s


def md(value: Any) -> str:
    """Escape Discord / Reddit markdown in an already-cleaned string."""
    return _MD.sub(r"\\\1", str(value))


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
    }
    if ev.kind == "closed":
        pct = result_pct(ev, entry_qty)
        view["outcome"] = outcome_word(ev, pct)
        view["result_pct"] = signed_pct(pct, 0)
    return view


def premium_view(ev: PositionEvent, entry_qty: int | None) -> dict[str, Any]:
    bull = is_bullish(ev)
    pct = result_pct(ev, entry_qty)
    analytics = []
    for k in sorted(ev.analytics):
        v = ev.analytics[k]
        if v is None:
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
    }


REPORT_LABELS = {"premarket": "Pre-market", "intraday": "Intraday", "close": "Market close", "monthly": "Monthly"}
_RECAP_FILE = re.compile(r"(\d{4})-(\d{2})-monthly-")


def report_link(path: str, base_url: str | None) -> str:
    name = PureWindowsPath(path).name if "\\" in path else PurePosixPath(path).name
    name = clean(name, 120).replace(" ", "%20")
    if base_url:
        return f"{base_url.rstrip('/')}/{name}"
    return name


def report_path(ev: ReportEvent, tier: str) -> str | None:
    """The tier's own report file; premium may fall back to the generic ``path``; never a lower tier upward."""
    p = ev.paths.get(tier)
    if p:
        return p
    if tier == "premium" and ev.path:
        return ev.path
    return None


def report_date(ev: ReportEvent, path: str) -> str:
    """The day a report is about; for the monthly recap the month, which its file is named after
    (``2026-11-monthly-<tier>.html``, reports.recap_render.recap_stem): it is posted in the next month."""
    m = _RECAP_FILE.match(path.replace("\\", "/").rsplit("/", 1)[-1]) if ev.kind == "monthly" else None
    if m and int(m.group(1)) >= 1 and 1 <= int(m.group(2)) <= 12:
        return datetime(int(m.group(1)), int(m.group(2)), 1).strftime("%B %Y")
    return ev.dt.astimezone(NY).strftime("%b %d, %Y")


def report_view(ev: ReportEvent, tier: str, base_url: str | None) -> dict[str, Any] | None:
    path = report_path(ev, tier)
    if path is None:
        return None
    view: dict[str, Any] = {
        "kind": ev.kind,
        "label": REPORT_LABELS.get(ev.kind, ev.kind),
        "date": report_date(ev, path),
        "link": report_link(path, base_url),
    }
    if tier == "premium":
        view["summary"] = clean(ev.summary, 600)
    return view


# ------------------------------------------------------------------ templates
@dataclass(frozen=True)
class Rendered:
    text: str
    embed: dict[str, Any] | None = None
    title: str | None = None  # Reddit submission title
    thread_name: str | None = None  # Discord thread created from the root

    def payload_hash(self) -> str:
        blob = json.dumps({"text": self.text, "embed": self.embed, "title": self.title}, sort_keys=True,
                          ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


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
                 report_base_url: str | None = None) -> None:
        self.env = make_env(templates_dir)
        self.free_result_pct = free_result_pct
        self.report_base_url = report_base_url

    def _render(self, channel: str, tier: str, event: str, view: dict[str, Any], idem: str) -> Rendered:
        tmpl = self.env.get_template(f"{channel}/{tier}/{event}.j2")
        module = tmpl.make_module({"t": view, "ref": ref_tag(idem), "tier": tier, "channel": channel})
        text = re.sub(r"\n{3,}", "\n\n", str(module)).strip()
        embed = _build_embed(module) if getattr(module, "embed", False) else None
        title = getattr(module, "title", None) if channel == "reddit" else None
        thread_name = getattr(module, "thread_name", None)
        return Rendered(text=text, embed=embed, title=_cap(title, 300) if title else None,
                        thread_name=_cap(thread_name, 100) if thread_name else None)

    def position(self, ev: PositionEvent, channel: str, tier: str, idem: str,
                 entry_qty: int | None = None) -> Rendered:
        if tier == "premium":
            view = premium_view(ev, entry_qty)
        elif tier == "basic":
            view = basic_view(ev, entry_qty)
        else:
            view = free_view(ev, entry_qty, self.free_result_pct)
        return self._render(channel, tier, ev.kind, view, idem)

    def report(self, ev: ReportEvent, channel: str, tier: str, idem: str) -> Rendered | None:
        view = report_view(ev, tier, self.report_base_url)
        if view is None:
            return None
        return self._render(channel, tier, "report", view, idem)

