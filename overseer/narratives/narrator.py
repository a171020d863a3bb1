"""Narratives: trade explanations, report commentary, daily summaries, alert notes.

Every text is written by the model when it is available and passes the guards
(:func:`overseer.narratives.guard.check_text`: no numbers absent from the input data, no links
or mentions, sentence and length caps), else rendered from a deterministic template
(``templates/overseer/*.j2``) built only from the input numbers. Nothing here raises for an
upstream problem; a narrative always comes back.

    narrator = Narrator.from_context(ctx)             # in a service (Redis budget/cache, audit on the bus)
    narrator = Narrator(settings, secrets)            # anywhere else (in-memory budget, audit kept in memory)
    text = await narrator.commentary("positions", {"open": 3, "premium_open": 2450.0})
    n = await narrator.narrate_commentary("positions", data)   # Narrative(text, source, ai)
    await narrator.aclose()
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.bus.bus import Bus, Tx
from core.bus.keys import Keys
from core.clock.clock import Clock, LiveClock
from core.config.model import Settings
from core.config.secrets import Secrets
from core.domain.signal import Signal
from core.risk import premium_at_risk
from overseer.ai.gateway import AiGateway, ToolSpec
from overseer.narratives import templates as tpl
from overseer.narratives.guard import check_text
from overseer.prompting import DATA_RULES, clip, data_block

Source = Literal["model", "template"]

MAX_CHARS = {"trade": 600, "commentary": 700, "daily": 900, "alert": 400}
MAX_SENTENCES = {"trade": 3, "commentary": 4, "daily": 5, "alert": 2}

NARRATIVE_SYSTEM = (
    "You write short plain-text notes for Quanticity, an options desk that only buys single-leg "
    "calls and puts. Readers are the desk's admin and its subscribers.\n" + DATA_RULES + "\n"
    "Write only from the data. Use only numbers that appear in the data, written as they appear "
    "(you may round); never compute or invent new numbers, dates or prices. No links, no @mentions, "
    "no markdown, no hype, no promises, no advice to buy or sell. Answer only by calling the "
    "write_note tool."
)


class NoteOutput(BaseModel):
    """The only thing the model can return for a narrative."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=1500)


NOTE_TOOL = ToolSpec(
    name="write_note",
    description="Return the note. The text must follow the instructions and use only numbers from the data.",
    input_schema={
        "type": "object",
        "properties": {
            "text": {
                "type": "string",
                "minLength": 1,
                "maxLength": 1500,
                "description": "The note, plain text.",
            }
        },
        "required": ["text"],
        "additionalProperties": False,
    },
)


@dataclass
class Narrative:
    text: str
    source: Source
    ai: dict[str, Any] = field(default_factory=dict)  # AiResult.summary() (+ "rejected" when guarded out)


def _right_word(right: Any) -> str:
    r = str(getattr(right, "value", right) or "").upper()
    return "call" if r in ("C", "CALL") else "put" if r in ("P", "PUT") else "option"


def _num_or_none(x: Any) -> float | None:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def trade_facts(
    signal: Signal, snapshot: dict[str, Any] | None = None, account_value: float | None = None
) -> dict[str, Any]:
    """The numbers a trade explanation may use (template context and guard data)."""
    ins = signal.instrument
    premium = premium_at_risk(signal)
    premium = premium if math.isfinite(premium) else float(signal.qty * signal.limit * ins.multiplier)
    acct = _num_or_none(account_value)
    snap = snapshot or {}
    mid = (signal.quote.bid + signal.quote.ask) / 2.0
    facts: dict[str, Any] = {
        "symbol": signal.symbol,
        "strategy": signal.strategy,
        "strike": ins.strike,
        "right": getattr(ins.right, "value", ins.right),
        "right_word": _right_word(ins.right),
        "expiry": ins.expiry.isoformat() if isinstance(ins.expiry, date) else None,
        "qty": signal.qty,
        "limit": signal.limit,
        "stop": signal.stop,
        "targets": list(signal.targets),
        "bid": signal.quote.bid,
        "ask": signal.quote.ask,
        "mid": round(mid, 4),
        "spread_pct": round((signal.quote.ask - signal.quote.bid) / mid * 100.0, 2) if mid > 0 else None,
        "premium": round(premium, 2),
        "risk_pct": round(premium / acct * 100.0, 2) if acct and acct > 0 else None,
        "account_value": acct,
        "confidence": signal.confidence,
        "horizon": getattr(signal.horizon, "value", signal.horizon),
        "direction": getattr(signal.implied_direction(), "value", None),
        "triggers": [str(t)[:120] for t in signal.triggers[:3]],
        "spot": _num_or_none(signal.spot if signal.spot is not None else snap.get("spot")),
        "flip": _num_or_none(snap.get("zero_gamma")),
        "call_wall": _num_or_none(snap.get("call_wall")),
        "put_wall": _num_or_none(snap.get("put_wall")),
    }
    return facts


def _names(data: dict[str, Any]) -> dict[str, Any]:
    """Entries usable as template variables."""
    return {k: v for k, v in data.items() if isinstance(k, str) and k.isidentifier()}


def template_trade_explanation(facts: dict[str, Any]) -> str:
    return tpl.render("trade_explanation.j2", **facts)


class Narrator:
    """Model-written narratives with deterministic fallbacks. See the module docstring."""

    def __init__(
        self,
        settings: Settings,
        secrets: Secrets,
        *,
        clock: Clock | None = None,
        redis: Any = None,
        keys: Keys | None = None,
        bus: Bus | None = None,
        gateway: AiGateway | None = None,
    ) -> None:
        self.settings = settings
        self.gateway = gateway or AiGateway(
            settings, secrets, clock or (bus.clock if bus else LiveClock()), redis=redis, keys=keys, bus=bus
        )
        self._own_gateway = gateway is None

    @classmethod
    def from_context(cls, ctx: Any) -> Narrator:
        """From a :class:`core.runtime.service.Context`: Redis budget/cache, audit on its bus."""
        return cls(ctx.settings, ctx.secrets, clock=ctx.clock, redis=ctx.redis, keys=ctx.keys, bus=ctx.bus)

    async def aclose(self) -> None:
        if self._own_gateway:
            await self.gateway.aclose()

    # ------------------------------------------------------------------ core
    async def narrate(
        self,
        kind: str,
        instruction: str,
        data: dict[str, Any],
        fallback: str,
        *,
        tx: Tx | None = None,
        correlation_id: str | None = None,
    ) -> Narrative:
        """Ask the model for a note about ``data``; ``fallback`` when it is unavailable or guarded out."""
        max_sentences = MAX_SENTENCES.get(kind, 3)
        max_chars = MAX_CHARS.get(kind, 600)
        payload = clip(data)
        user = (
            f"Task: {instruction} At most {max_sentences} sentences and {max_chars} characters.\n"
            f"{data_block(payload)}\nCall write_note with the note."
        )
        res = await self.gateway.call_tool(
            purpose=f"narrative.{kind}",
            system=NARRATIVE_SYSTEM,
            user=user,
            tool=NOTE_TOOL,
            model_cls=NoteOutput,
            max_tokens=self.settings.overseer.narrative_max_tokens,
            tx=tx,
            correlation_id=correlation_id,
        )
        info = res.summary()
        if res.ok and res.data is not None:
            text = check_text(res.data.get("text"), payload, max_sentences=max_sentences, max_chars=max_chars)
            if text is not None:
                return Narrative(text, "model", info)
            info = {**info, "rejected": "guard"}
        return Narrative(fallback, "template", info)

    # ------------------------------------------------------------------ public API
    async def narrate_trade(
        self,
        signal: Signal,
        snapshot: dict[str, Any] | None = None,
        *,
        account_value: float | None = None,
        tx: Tx | None = None,
        correlation_id: str | None = None,
    ) -> Narrative:
        facts = trade_facts(signal, snapshot, account_value)
        return await self.narrate(
            "trade",
            "Explain this options trade to a premium subscriber: what is bought, what is at "
            "risk, the exit plan and the setup.",
            facts,
            template_trade_explanation(facts),
            tx=tx,
            correlation_id=correlation_id or signal.id,
        )

    async def explain_trade(
        self,
        signal: Signal,
        snapshot: dict[str, Any] | None = None,
        *,
        account_value: float | None = None,
        tx: Tx | None = None,
        correlation_id: str | None = None,
    ) -> str:
        """A trade explanation for premium subscribers, at most 3 sentences."""
        return (
            await self.narrate_trade(
                signal, snapshot, account_value=account_value, tx=tx, correlation_id=correlation_id
            )
        ).text

    async def narrate_commentary(
        self, section: str, data: dict[str, Any], *, tx: Tx | None = None, correlation_id: str | None = None
    ) -> Narrative:
        data = data if isinstance(data, dict) else {"value": data}
        name = f"commentary_{section}.j2"
        ctx = {**_names(data), "section": section, "facts": tpl.scalar_facts(data)}
        fallback = tpl.render(name if tpl.has_template(name) else "commentary.j2", **ctx)
        return await self.narrate(
            "commentary",
            f"Write the commentary for the '{section[:60]}' section of a trading report.",
            {"section": section, "data": data},
            fallback,
            tx=tx,
            correlation_id=correlation_id,
        )

    async def commentary(
        self, section: str, data: dict[str, Any], *, tx: Tx | None = None, correlation_id: str | None = None
    ) -> str:
        """Report commentary for one section (at most 4 sentences)."""
        return (await self.narrate_commentary(section, data, tx=tx, correlation_id=correlation_id)).text

    async def narrate_daily_summary(
        self, data: dict[str, Any], *, tx: Tx | None = None, correlation_id: str | None = None
    ) -> Narrative:
        data = data if isinstance(data, dict) else {"value": data}
        ctx = {
            "date": None,
            "wins": None,
            "losses": None,
            "realized_pnl": None,
            "best": None,
            "worst": None,
            "alerts": None,
            "halted": False,
            **_names(data),
            "facts": tpl.scalar_facts(data),
        }
        fallback = tpl.render("daily_summary.j2", **ctx)
        return await self.narrate(
            "daily",
            "Write the end-of-day summary of the desk: results, notable trades, problems.",
            data,
            fallback,
            tx=tx,
            correlation_id=correlation_id,
        )

    async def daily_summary(
        self, data: dict[str, Any], *, tx: Tx | None = None, correlation_id: str | None = None
    ) -> str:
        """End-of-day summary (at most 5 sentences)."""
        return (await self.narrate_daily_summary(data, tx=tx, correlation_id=correlation_id)).text

    async def explain_alert(
        self,
        *,
        code: str,
        severity: str,
        subject: str,
        message: str,
        facts: dict[str, Any],
        tx: Tx | None = None,
        correlation_id: str | None = None,
    ) -> str:
        """A short explanation of an anomaly alert for the admin (at most 2 sentences)."""
        fallback = tpl.render(
            "alert_explanation.j2",
            code=code,
            severity=severity,
            subject=subject,
            message=message,
            facts=facts,
        )
        data = {"code": code, "severity": severity, "subject": subject, "message": message, "facts": facts}
        n = await self.narrate(
            "alert",
            "Explain this monitoring alert to the desk admin: what it means and why it matters.",
            data,
            fallback,
            tx=tx,
            correlation_id=correlation_id,
        )
        return n.text
