"""The operator's Telegram without Telegram: the admin chat of a demo day, rebuilt after the run.

For every signal that reached approval (an ``approval.decision`` event) it renders the card
the admin receives - the real ``card_signal`` template through the bot's own views - with the
Approve / Half size / Reject buttons drawn inert, then the card's edit: approved (automatically
by the policy, or by whom), rejected, expired, or refused at placement (``order_refused``
audit). Report approvals get ``card_report`` with their document; fills and closes of a carded
trade are the replies the bot posts under the card. Built from ``journal.jsonl`` after the run,
so rendering can change no decision (read it with ``core.runtime.journal_read.read_events``).

Under the demo's ``auto`` policy the bot sends no card (the policy decided at once); the card is
shown as the admin would have received it under the manual policy (expiry = the strategy's
``card_ttl_s`` after the signal), with the automatic approval as its edit.
"""

from __future__ import annotations

import html
import os
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.telegram.names import actor_words
from bot.telegram.notify import APPROVE, APPROVE_REPORT, HALF, REJECT
from bot.telegram.render import Renderer, clip
from bot.telegram.views import outcome_view, position_view, refusal_view, report_view, signal_view
from core.bus.events import NY, ApprovalEvent, AuditEvent, Event, PositionEvent, ReportEvent

CARD_TYPES = ("approval.decision", "report", "audit", "position.update")
DEFAULT_TTL_S = 300  # core.approvals.service.DEFAULT_CARD_TTL_S
# the button rows of bot.telegram.notify (drawn inert here)
SIGNAL_BUTTONS = (APPROVE, HALF, REJECT)  # the bot's own labels (bot/telegram/notify.py)
REPORT_BUTTONS = (APPROVE_REPORT, REJECT)
_TG_TAG = re.compile(r"<(?!/?(?:b|i|u|s|code|pre)>)")  # anything but Telegram's own markup


@dataclass(frozen=True, slots=True)
class AdminItem:
    ts: int    # epoch ms: when the admin chat shows it
    html: str
    kind: str  # signal | report | reply


@dataclass(frozen=True, slots=True)
class CardSettings:
    account_value: float = 0.0  # 0: the risk figures the events carry
    card_ttl_s: Mapping[str, int] | None = None  # strategy -> card lifetime


def hhmm(ms: int, seconds: bool = False) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(NY).strftime("%H:%M:%S" if seconds else "%H:%M")


def by_label(by: str) -> str:
    """``decided_by`` in words, as the bot says it (``bot.telegram.names.actor_words``), without its
    name table; capped for the page."""
    return clip(actor_words(by), 60)


def _bubble(text: str) -> str:
    """Telegram HTML (values escaped by the templates) as page HTML: only its own tags pass."""
    return f'<div class="tg-bubble">{_TG_TAG.sub("&lt;", text)}</div>'


def _buttons(labels: list[str]) -> str:
    cells = "".join(f'<button type="button" disabled>{html.escape(x)}</button>' for x in labels)
    return f'<div class="tg-buttons" title="inert: the demo decides without Telegram">{cells}</div>'


def _outcome_line(ev: ApprovalEvent, refusal: dict | None) -> tuple[str, str]:
    at = hhmm(ev.ts)
    if refusal is not None:
        return "refused", f"⛔ approved at {at}, refused at placement at {hhmm(refusal['at_ms'])}: {refusal['reason']}"
    if ev.decision == "approved":
        half = " at half size" if 0 < ev.qty < max(1, ev.signal.qty) else ""
        if ev.decided_by.startswith("policy:"):
            return "approved", f"✅ approved automatically at {at}{half} ({by_label(ev.decided_by)})"
        return "approved", f"✅ approved{half} by {by_label(ev.decided_by)} at {at}"
    if ev.decision == "rejected":
        return "rejected", f"❌ rejected by {by_label(ev.decided_by)} at {at}"
    return "expired", f"⌛ expired at {at}: no decision, nothing ordered"


class CardBook:
    def __init__(self, settings: CardSettings, base_dir: Path | None) -> None:
        self.settings = settings
        self.base_dir = base_dir
        self.renderer = Renderer()

    def _ttl(self, strategy: str) -> int:
        return int((self.settings.card_ttl_s or {}).get(strategy, DEFAULT_TTL_S))

    def signal_card(self, evs: list[ApprovalEvent], refused: AuditEvent | None) -> AdminItem:
        first = evs[0]
        sent = first if first.decision == "pending" else first.model_copy(update={
            "decision": "pending", "qty": first.signal.qty,
            "expires_ts": first.ts + self._ttl(first.signal.strategy) * 1000})
        acct = self.settings.account_value
        view = signal_view(sent, acct)
        parts = [f'<div class="tg card" id="card-{html.escape(first.signal.id, quote=True)}">',
                 f'<div class="tg-head">approval card · sent {hhmm(first.ts, True)}</div>',
                 _bubble(self.renderer.render("card_signal", c=view, outcome=None)),
                 _buttons([b.format(half=view["half_qty"]) for b in SIGNAL_BUTTONS])]
        final = next((e for e in reversed(evs) if e.decision != "pending"), None)
        if final is None:
            parts.append('<div class="tg-outcome pending">🟡 still waiting for a decision when the day ended</div>')
        else:
            refusal = None
            if refused is not None and final.decision == "approved":
                d = refused.detail
                refusal = refusal_view(d.get("reason", ""), d.get("detail", ""), refused.ts)
            state, line = _outcome_line(final, refusal)
            fview = signal_view(final, acct)
            outcome = outcome_view(final.decision, by_label(final.decided_by), final.ts, final.qty, fview["full_qty"])
            edited = self.renderer.render("card_signal", c=fview, outcome=outcome, refusal=refusal)
            parts.append(f'<div class="tg-outcome {state}">{html.escape(line)}</div>'
                         f'<details><summary>the card after the edit (buttons removed)</summary>'
                         f'{_bubble(edited)}</details>')
        parts.append("</div>")
        return AdminItem(first.ts, "".join(parts), "signal")

    def _doc_link(self, path: str) -> str:
        name = html.escape(path.rsplit("/", 1)[-1] or "report")
        if self.base_dir is None or not path:
            return f'<div class="tg-doc">📎 {name}</div>'
        try:
            rel = Path(os.path.relpath(path, self.base_dir)).as_posix()
        except ValueError:
            return f'<div class="tg-doc">📎 {name}</div>'
        if rel.startswith("../"):
            return f'<div class="tg-doc">📎 {name}</div>'
        return f'<div class="tg-doc">📎 <a href="{html.escape(rel, quote=True)}">{name}</a></div>'

    def report_card(self, evs: list[ReportEvent]) -> AdminItem:
        sent = next((e for e in evs if e.status == "pending_approval"), evs[0])
        view = report_view(sent)
        parts = [f'<div class="tg card report" id="card-{html.escape(sent.report_id, quote=True)}">',
                 f'<div class="tg-head">report card · sent {hhmm(sent.ts, True)}</div>',
                 self._doc_link(sent.path),
                 _bubble(self.renderer.render("card_report", r=view, outcome=None, missing=False)),
                 _buttons(list(REPORT_BUTTONS))]
        final = next((e for e in reversed(evs) if e.status in ("approved", "rejected", "expired")), None)
        if final is None:
            parts.append('<div class="tg-outcome pending">🟡 still waiting for a decision when the day ended</div>')
        else:
            auto = final.by.startswith("policy:")
            words = {"approved": "✅ approved", "rejected": "❌ rejected", "expired": "⌛ expired"}[final.status]
            who = " automatically" if auto else (f" by {by_label(final.by)}" if final.status != "expired" else "")
            edited = self.renderer.render("card_report", r=report_view(final),
                                          outcome=outcome_view(final.status, by_label(final.by), final.ts),
                                          missing=False)
            parts.append(f'<div class="tg-outcome {final.status}">{html.escape(f"{words}{who} at {hhmm(final.ts)}")}'
                         f'</div><details><summary>the caption after the edit</summary>{_bubble(edited)}</details>')
        parts.append("</div>")
        return AdminItem(sent.ts, "".join(parts), "report")

    def reply(self, ev: PositionEvent, card_ts: int, card_id: str) -> AdminItem:
        text = self.renderer.render("position", p=position_view(ev))
        head = (f'<div class="tg-head">↳ <a href="#card-{html.escape(card_id, quote=True)}">reply to the card of '
                f'{hhmm(card_ts)}</a> · {hhmm(ev.ts, True)}</div>')
        return AdminItem(ev.ts, f'<div class="tg reply">{head}{_bubble(text)}</div>', "reply")


def admin_items(events: list[Event], settings: CardSettings | None = None,
                base_dir: str | os.PathLike[str] | None = None) -> list[AdminItem]:
    """The admin chat's items in time order, from the journal's events (``CARD_TYPES``)."""
    book = CardBook(settings or CardSettings(), Path(base_dir) if base_dir is not None else None)
    signals: dict[str, list[ApprovalEvent]] = defaultdict(list)
    reports: dict[str, list[ReportEvent]] = defaultdict(list)
    refused: dict[str, AuditEvent] = {}
    positions: list[PositionEvent] = []
    for ev in events:
        _sort(ev, signals, reports, refused, positions)
    items: list[AdminItem] = []
    card_of: dict[str, tuple[int, str]] = {}
    for sid, evs in signals.items():
        items.append(book.signal_card(evs, refused.get(evs[0].correlation_id)))
        card_of.setdefault(evs[0].correlation_id, (evs[0].ts, sid))
    items.extend(book.report_card(evs) for evs in reports.values())
    for p in positions:
        if p.correlation_id in card_of:
            items.append(book.reply(p, *card_of[p.correlation_id]))
    items.sort(key=lambda it: it.ts)  # stable: same-instant items keep journal order
    return items


def _sort(ev: Event, signals: dict[str, list[ApprovalEvent]], reports: dict[str, list[ReportEvent]],
          refused: dict[str, AuditEvent], positions: list[PositionEvent]) -> None:
    if isinstance(ev, ApprovalEvent):
        signals[ev.signal.id].append(ev)
    elif isinstance(ev, ReportEvent) and ev.report_id:
        reports[ev.report_id].append(ev)
    elif isinstance(ev, AuditEvent) and ev.action == "order_refused" and ev.detail.get("purpose", "entry") == "entry":
        refused.setdefault(ev.correlation_id, ev)
    elif isinstance(ev, PositionEvent) and ev.kind in ("entry", "closed"):
        positions.append(ev)
