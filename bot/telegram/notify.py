"""Events from the bus -> messages in the admin chat (queued on the handler's transaction).

- ApprovalEvent ``pending``: an approval card with Approve / Half size / Reject buttons,
  only while its claim card is still pending. ``approved`` / ``rejected`` / ``expired``:
  the card is edited to the outcome (who, when) and loses its buttons.
- ReportEvent ``pending_approval``: the HTML file (sendDocument) with the summary and
  Approve / Reject; ``approved`` / ``rejected`` / ``expired`` edit the caption.
- AlertEvent WARNING / CRITICAL (raised and cleared), PositionEvent ``entry`` (fills) and
  ``closed`` (closes): per ``telegram.alerts`` on / silent / off. A fill or close replies
  to the approval card of its trade when there is one.
- ControlEvent halt / resume / flatten taken outside Telegram (overseer, CLI): a notice.
- AuditEvent ``order_refused`` of an entry (the execution service's pre-trade check refused an
  approved entry at placement, or refused the approval itself): the approved card is edited to
  say so, with the reason code and the rule's words; without a card in this chat (auto policy)
  the card text is sent as a new message; without a recorded card, a one-line notice.
"""

from __future__ import annotations

import logging
from typing import Literal

from bot.telegram.auth import Auth
from bot.telegram.callbacks import pack
from bot.telegram.cards import CardStore, report_item, signal_item
from bot.telegram.names import Names
from bot.telegram.outbox import Outbox, Outgoing
from bot.telegram.render import Renderer, clip
from bot.telegram.views import (
    alert_view,
    control_view,
    outcome_view,
    position_view,
    refusal_view,
    report_view,
    signal_view,
)
from core.approvals.claims import read_card
from core.bus.bus import Bus, Tx
from core.bus.events import AlertEvent, ApprovalEvent, AuditEvent, ControlEvent, PositionEvent, ReportEvent
from core.config.model import Settings
from core.control.halt import read_halt
from core.domain.signal import Signal
from core.runtime import metrics

log = logging.getLogger("quanticity.telegram.notify")

Level = Literal["on", "silent", "off"]


# the card buttons' labels (also drawn, inert, on the demo's outbox page: bot/distribution/outbox_cards.py)
APPROVE, HALF, REJECT, APPROVE_REPORT = "✅ Approve", "½ Half ({half})", "❌ Reject", "✅ Approve report"

class Notifier:
    def __init__(self, bus: Bus, settings: Settings, auth: Auth, renderer: Renderer, outbox: Outbox,
                 cards: CardStore, names: Names, service_name: str = "telegram") -> None:
        self.bus = bus
        self.redis = bus.redis
        self.keys = bus.keys
        self.settings = settings
        self.auth = auth
        self.renderer = renderer
        self.outbox = outbox
        self.cards = cards
        self.names = names
        self.service_name = service_name

    # ------------------------------------------------------------------ helpers
    def _chat(self) -> int | str | None:
        chat = self.auth.home_chat
        if chat is None:
            metrics.REJECTED.labels(self.service_name, "no_admin_chat").inc()
            log.error("no TELEGRAM_ADMIN_CHAT_ID / TELEGRAM_ADMIN_IDS: nowhere to send admin messages")
        return chat

    def _stale(self, ts: int, what: str) -> bool:
        age_ms = self.bus.clock.ms() - ts
        if age_ms > self.settings.telegram.max_event_age_s * 1000:
            log.info("not sending %s: %.0fs old (the bot was down)", what, age_ms / 1000)
            metrics.REJECTED.labels(self.service_name, "stale_event").inc()
            return True
        return False

    def _queue(self, tx: Tx, msg: Outgoing) -> None:
        self.outbox.enqueue_on(tx.pipe, msg, self.bus.clock.ms())

    # ------------------------------------------------------------------ approvals
    async def approval(self, ev: ApprovalEvent, tx: Tx) -> None:
        item = signal_item(ev.signal.id)
        acct = self.settings.risk.account_value
        if ev.decision == "pending":
            card = await read_card(self.redis, self.bus, item)
            if card is None or card.get("state") != "pending":
                log.info("card %s is no longer pending (%s): not shown", item, card and card.get("state"))
                return
            chat = self._chat()
            if chat is None:
                return
            view = signal_view(ev, acct)
            text = self.renderer.render("card_signal", c=view, outcome=None)
            sid = ev.signal.id
            buttons = [[(APPROVE, await pack(self.redis, self.keys, "a", sid)),
                        (HALF.format(half=view['half_qty']), await pack(self.redis, self.keys, "h", sid)),
                        (REJECT, await pack(self.redis, self.keys, "r", sid))]]
            self.cards.open_on(tx.pipe, item, chat, "signal", ev.correlation_id)
            self._queue(tx, Outgoing(idem=f"card:{item}", chat_id=chat, text=text, buttons=buttons,
                                     record_card=item))
            return
        rec = await self.cards.get(item)
        if rec is None:  # decided without a card in this chat (auto policy, or never shown)
            return
        view = signal_view(ev, acct)
        outcome = outcome_view(ev.decision, await self.names.label(ev.decided_by), ev.ts, ev.qty, view["full_qty"])
        text = self.renderer.render("card_signal", c=view, outcome=outcome)
        self._queue(tx, Outgoing(idem=f"card:{item}:{ev.decision}", chat_id=rec["chat_id"], op="edit_card",
                                 edit_card=item, text=text))

    async def order_refused(self, ev: AuditEvent, tx: Tx) -> None:
        """An approved entry refused before it reached the broker: the card says so and why."""
        d = ev.detail
        order_id = str(d.get("order_id", ""))
        # the broker guard's refusals (live spread, broker down) carry no purpose: entries are ent-<id>
        purpose = d.get("purpose") or ("entry" if order_id.startswith("ent-") else "exit")
        if purpose != "entry" or self._stale(ev.ts, f"refusal of {order_id}"):
            return
        chat = self._chat()
        if chat is None:
            return
        refusal = refusal_view(d.get("reason", ""), d.get("detail", ""), ev.ts)
        item = await self.cards.by_correlation(ev.correlation_id) or signal_item(order_id.removeprefix("ent-"))
        try:
            claim = await read_card(self.redis, self.bus, item)
        except ValueError:  # a card whose payload does not read back
            claim = None
        appr = self._approved_from_card(claim, ev.correlation_id, d.get("qty"))
        if appr is None:  # no card was ever recorded: the facts in one line
            text = self.renderer.reply("order_refused", order_id=clip(order_id, 80), reason=refusal["reason"],
                                       detail=refusal["detail"])
            self._queue(tx, Outgoing(idem=f"refused:{order_id}", chat_id=chat, text=text))
            return
        acct = self.settings.risk.account_value
        view = signal_view(appr, acct)
        outcome = outcome_view("approved", await self.names.label(appr.decided_by), int(claim.get("decided_ms") or 0),
                               appr.qty, view["full_qty"])
        text = self.renderer.render("card_signal", c=view, outcome=outcome, refusal=refusal)
        rec = await self.cards.get(item)
        if rec is None:  # decided without a card in this chat (auto policy): the card, now
            self._queue(tx, Outgoing(idem=f"refused:{order_id}", chat_id=chat, text=text))
            return
        self._queue(tx, Outgoing(idem=f"card:{item}:refused", chat_id=rec["chat_id"], op="edit_card",
                                 edit_card=item, text=text))

    def _approved_from_card(self, claim: dict | None, corr: str, qty: object) -> ApprovalEvent | None:
        """The approval a card recorded (as ``core.approvals.decide`` builds it), or None."""
        if claim is None:
            return None
        p = claim.get("payload") or {}
        try:
            signal = Signal.model_validate(p["signal"])
            n = qty if isinstance(qty, int) and qty > 0 else signal.qty
            return self.bus.make(ApprovalEvent, correlation_id=p.get("correlation_id") or corr, signal=signal,
                                 decision="approved", qty=n, decided_by=str(claim.get("decided_by") or ""),
                                 policy=p.get("policy", "manual"), verdict=p.get("verdict", ""),
                                 explanation=p.get("explanation", ""), concerns=p.get("concerns", []),
                                 ai_status=p.get("ai_status", ""), premium_at_risk=p.get("premium_at_risk", 0.0),
                                 risk_pct=p.get("risk_pct", 0.0))
        except Exception:  # noqa: BLE001 - an unreadable card: the one-line notice instead
            log.warning("card of %s does not read back: refusal sent as a notice", corr)
            return None

    # ------------------------------------------------------------------ reports
    async def report(self, ev: ReportEvent, tx: Tx) -> None:
        if not ev.report_id:
            return
        item = report_item(ev.report_id)
        view = report_view(ev)
        if ev.status == "pending_approval":
            card = await read_card(self.redis, self.bus, item)
            if card is None or card.get("state") != "pending":
                return
            chat = self._chat()
            if chat is None:
                return
            caption = self.renderer.render("card_report", r=view, outcome=None, missing=False)
            fallback = self.renderer.render("card_report", r=view, outcome=None, missing=bool(ev.path))
            buttons = [[(APPROVE_REPORT, await pack(self.redis, self.keys, "ra", ev.report_id)),
                        (REJECT, await pack(self.redis, self.keys, "rr", ev.report_id))]]
            self.cards.open_on(tx.pipe, item, chat, "report", ev.correlation_id)
            self._queue(tx, Outgoing(idem=f"card:{item}", chat_id=chat, op="document", path=ev.path or None,
                                     filename=view["file"] or None, caption=caption, text=fallback,
                                     buttons=buttons, record_card=item))
        elif ev.status in ("approved", "rejected", "expired"):
            rec = await self.cards.get(item)
            if rec is None:
                return
            outcome = outcome_view(ev.status, await self.names.label(ev.by), ev.ts)
            text = self.renderer.render("card_report", r=view, outcome=outcome, missing=rec.get("media") == "text")
            self._queue(tx, Outgoing(idem=f"card:{item}:{ev.status}", chat_id=rec["chat_id"], op="edit_card",
                                     edit_card=item, text=text))

    # ------------------------------------------------------------------ alerts, fills, closes
    async def alert(self, ev: AlertEvent, tx: Tx) -> None:
        if ev.severity == "INFO":
            return
        level: Level = (self.settings.telegram.alerts.critical if ev.severity == "CRITICAL"
                        else self.settings.telegram.alerts.warnings)
        if level == "off" or self._stale(ev.ts, f"alert {ev.code}"):
            return
        chat = self._chat()
        if chat is None:
            return
        halted = (await read_halt(self.redis, self.keys)).halted
        text = self.renderer.render("alert", a=alert_view(ev, halted))
        self._queue(tx, Outgoing(idem=f"alert:{ev.id}", chat_id=chat, text=text, silent=level == "silent"))

    async def position(self, ev: PositionEvent, tx: Tx) -> None:
        if ev.kind == "entry":
            level: Level = self.settings.telegram.alerts.fills
        elif ev.kind == "closed":
            level = self.settings.telegram.alerts.closes
        else:
            return
        if level == "off" or self._stale(ev.ts, f"{ev.kind} of {ev.position_id}"):
            return
        chat = self._chat()
        if chat is None:
            return
        text = self.renderer.render("position", p=position_view(ev))
        reply_card = await self.cards.by_correlation(ev.correlation_id)
        self._queue(tx, Outgoing(idem=f"position:{ev.id}", chat_id=chat, text=text, silent=level == "silent",
                                 reply_card=reply_card))

    async def control(self, ev: ControlEvent, tx: Tx) -> None:
        if ev.action not in ("halt", "resume", "flatten") or ev.by.startswith("tg:"):
            return  # an admin's own action was answered in the chat already
        if self._stale(ev.ts, f"control {ev.action}"):
            return
        chat = self._chat()
        if chat is None:
            return
        text = self.renderer.render("control", c=control_view(ev, await self.names.label(ev.by)))
        self._queue(tx, Outgoing(idem=f"control:{ev.id}", chat_id=chat, text=text, silent=ev.action != "halt"))
