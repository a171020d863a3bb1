"""Deciding without Telegram: ``main.py pending | approve ID [--half] | reject ID``.

The operator's shell is one more approver, never a second path: a decision goes through the same
``decide_signal`` / ``decide_report`` (the Lua claim of :mod:`core.approvals.claims`) as a button
press, signed ``cli:<$USER>``, and leaves the same kind of audit entry the bot writes for
``/approve`` (``cli.<approve|half|reject>.result`` with the card's kind, id, result and state),
whatever the outcome. So a CLI press racing a Telegram press on one card has exactly one winner.

Decisions:
- "now" is the running system's clock: the wall clock, or in demo mode the shared simulated
  timeline when one is stored (``core.clock.timeline``), since cards there expire in simulated time.
- A card past its expiry that the sweep has not closed yet is not listed (it cannot be decided).
- An id names a signal or a report; the stored card decides which (``sig:`` / ``rep:`` may prefix it).
  A signal card is looked up first, as the bot's ``/approve`` does.
- ``already decided by`` shows the raw signer (``tg:1001``, ``timeout``, ``policy:auto``, ``cli:ann``):
  the CLI does not load the Telegram package to name admins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from core.approvals.claims import ClaimResult, pending_cards, read_card
from core.approvals.decide import decide_report, decide_signal
from core.bus.bus import Bus
from core.bus.events import AuditEvent
from core.clock.calendar import NY
from core.clock.clock import Clock, LiveClock
from core.domain.signal import Signal

KINDS = {"sig": "signal", "rep": "report"}


async def system_clock(bus: Bus) -> Clock:
    """The clock the running system decides with (see the module docstring)."""
    from core.clock.scaled_clock import ScaledClock

    if not bus.keys.prefix.endswith(".demo"):
        return LiveClock()
    h = await bus.redis.hgetall(bus.keys.hash("sim_clock"))
    try:
        anchor = datetime.fromtimestamp(int(h["sim_anchor_ms"]) / 1000, tz=NY)
        return ScaledClock(anchor, float(h["speed"]), wall_anchor=int(h["wall_anchor_ms"]) / 1000)
    except (KeyError, ValueError):  # no demo timeline stored (a lock-step demo, or none yet): wall time
        return LiveClock()


async def operator_bus(bus: Bus) -> Bus:
    return Bus(bus.redis, bus.keys, await system_clock(bus), maxlen=bus.maxlen, source="cli")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")


async def pending_items(bus: Bus) -> list[dict[str, Any]]:
    """Every card still open to a decision, soonest expiry first, as the JSON of ``pending --json``."""
    now = bus.clock.ms()
    items: list[dict[str, Any]] = []
    for item_id, expires in await pending_cards(bus.redis, bus):
        if expires <= now:  # past its expiry (the claim refuses it at >= expires_ms); the sweep closes it
            continue
        card = await read_card(bus.redis, bus, item_id)
        if card is None or card.get("state") != "pending":
            continue
        prefix, _, ident = item_id.partition(":")
        kind = card.get("kind") if card.get("kind") in KINDS.values() else KINDS.get(prefix, prefix)
        p = card["payload"] if isinstance(card["payload"], dict) else {}
        item: dict[str, Any] = {"id": ident, "kind": kind, "expires_at": _iso(expires),
                                "seconds_left": (expires - now) // 1000}
        if kind == "signal":
            item.update(_signal_fields(p))
        else:
            item.update({"report": p.get("kind", ""), "summary": p.get("summary", ""), "path": p.get("path", "")})
        items.append(item)
    return items


def _signal_fields(p: dict[str, Any]) -> dict[str, Any]:
    try:
        s = Signal.model_validate(p.get("signal"))
    except ValidationError as exc:  # listed so the operator sees it; approving it closes it (decide.py)
        err = exc.errors()[0]
        return {"contract": None, "side": None, "qty": None, "limit": None, "premium_at_risk": None,
                "risk_pct": None, "verdict": p.get("verdict", ""), "strategy": None,
                "invalid": f"{'.'.join(str(x) for x in err.get('loc', ())) or 'signal'}: {err.get('msg')}"}
    c = s.contract()
    return {"contract": c.label(), "occ": c.occ, "side": s.side.value, "qty": s.qty, "limit": s.limit,
            "premium_at_risk": p.get("premium_at_risk", 0.0), "risk_pct": p.get("risk_pct", 0.0),
            "verdict": p.get("verdict", ""), "strategy": s.strategy}


def format_pending(items: list[dict[str, Any]]) -> str:
    if not items:
        return "nothing waiting for a decision"
    lines = []
    for it in items:
        at = datetime.fromisoformat(it["expires_at"]).astimezone(NY)
        head = f"{it['kind']:<6} {it['id']:<24} expires {at:%H:%M:%S} NY ({it['seconds_left']}s)"
        if it["kind"] == "signal" and it.get("invalid"):
            lines.append(f"{head}  INVALID CARD ({it['invalid']})")
        elif it["kind"] == "signal":
            lines.append(f"{head}  {it['side']} {it['qty']} x {it['contract']} @ {it['limit']:.2f}  "
                         f"risk ${it['premium_at_risk']:,.0f}  {it['verdict']}  {it['strategy']}")
        else:
            lines.append(f"{head}  {it['report']} report  {it['summary'][:60]}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Outcome:
    decided: bool   # True: this command made the decision (exit 0)
    line: str       # the one line to print (stdout when decided, else stderr)


async def _which(bus: Bus, ident: str) -> tuple[str, str]:
    """(kind, id without prefix) of the stored card, or ("", id) when nothing is stored under it."""
    prefix, sep, rest = ident.partition(":")
    if sep and prefix in KINDS:
        return (KINDS[prefix], rest) if await read_card(bus.redis, bus, ident) else ("", rest)
    for p in ("sig", "rep"):
        if await read_card(bus.redis, bus, f"{p}:{ident}") is not None:
            return KINDS[p], ident
    return "", ident


async def decide(bus: Bus, ident: str, decision: str, by: str, *, half: bool = False) -> Outcome:
    """Decide the card ``ident`` (approved | rejected) as ``by``; audit it; say what happened."""
    kind, ident = await _which(bus, ident)
    name = "reject" if decision == "rejected" else ("half" if half else "approve")
    if kind == "report" and half:
        return Outcome(False, f"{ident} is a report: --half is for signals")
    res = ClaimResult("unknown", "", "")
    qty = 0
    if kind == "signal":
        card = await read_card(bus.redis, bus, f"sig:{ident}")
        res = await decide_signal(bus, ident, decision, by, half=half)
        qty = _approved_qty(card, half) if res.ok and decision == "approved" else 0
    elif kind == "report":
        res = await decide_report(bus, ident, decision, by)
    await bus.publish(bus.make(AuditEvent, actor=by, action=f"cli.{name}.result",
                               detail={"kind": kind or "unknown", "id": ident, "result": res.status,
                                       "state": res.state}))
    return Outcome(res.ok, describe(res, kind, ident, decision, half, qty))


def _approved_qty(card: dict[str, Any] | None, half: bool) -> int:
    """The size the approval carries: the rule of ``decide_signal`` (half: at least 1)."""
    qty = Signal.model_validate((card or {})["payload"]["signal"]).qty
    return max(1, qty // 2) if half else qty


def describe(res: ClaimResult, kind: str, ident: str, decision: str, half: bool, qty: int) -> str:
    what = f"{kind or 'card'} {ident}"
    if res.ok and decision == "approved" and kind == "signal":
        return f"approved {what}: qty {qty}{' (half size)' if half else ''}"
    if res.ok:
        return f"{decision} {what}"
    if res.status == "late" or (res.status == "already" and res.state == "expired"):
        return f"{what} expired: nothing decided"
    if res.status == "already":
        return f"{what} already decided by {res.decided_by or 'unknown'} ({res.state}): nothing changed"
    if res.status == "invalid":
        return f"{what} holds invalid values ({res.decided_by}): not approved, closed as rejected"
    return f"unknown id {ident}: no signal or report card under it"
