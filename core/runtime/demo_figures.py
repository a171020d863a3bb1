"""Figures of a demo day beyond the counts: why signals were rejected, what was left open, and
the lines the demo prints at its end (where its outputs are).

Reads only events (the run's own list or ``journal.jsonl`` read back), so it can change no
decision.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from core.bus.events import ApprovalEvent, AuditEvent, Event, OrderEvent, PositionEvent, VerdictEvent
from core.format.numbers import contract_label, option_price, plural


def rejections(events: list[Event]) -> dict[str, Any]:
    """Why signals went no further: the overseer's rule codes (a signal can break several, each
    counted once per signal), cards rejected or expired, approved entries refused at placement
    and entries cancelled unfilled."""
    rules: Counter[str] = Counter()
    example: dict[str, str] = {}
    refused: Counter[str] = Counter()
    unfilled: Counter[str] = Counter()
    cards: Counter[str] = Counter()
    for e in events:
        if isinstance(e, VerdictEvent) and e.decision == "reject":
            for code in dict.fromkeys(e.reasons or ["UNSPECIFIED"]):
                rules[code] += 1
                if code not in example:
                    example[code] = next((c.split(": ", 1)[-1] for c in e.concerns if c.startswith(code)), "")
        elif isinstance(e, ApprovalEvent) and e.decision in ("rejected", "expired"):
            cards[e.decision] += 1
        elif isinstance(e, AuditEvent) and e.action == "order_refused" and e.detail.get("purpose", "entry") == "entry":
            refused[str(e.detail.get("reason", "")) or "UNSPECIFIED"] += 1
        elif isinstance(e, OrderEvent) and e.purpose == "entry" and e.status == "cancelled":
            unfilled[e.reason or "cancelled"] += 1
    return {
        "by_overseer": sum(1 for e in events if isinstance(e, VerdictEvent) and e.decision == "reject"),
        "rules": dict(rules.most_common()),
        "rule_examples": {k: example[k] for k, _ in rules.most_common() if example.get(k)},
        "cards": dict(sorted(cards.items())),
        "refused_at_placement": dict(refused.most_common()),
        "entries_unfilled": dict(unfilled.most_common()),
    }


def open_positions(events: list[Event]) -> list[dict[str, Any]]:
    """Positions whose last event leaves contracts open, in the order they were opened."""
    last: dict[str, PositionEvent] = {}
    for e in events:
        if isinstance(e, PositionEvent):
            last[e.position_id] = e
    out = []
    for pid, p in last.items():
        if p.kind != "closed" and p.qty_open > 0:
            out.append({"position_id": pid, "contract": contract_label(p.symbol, p.expiry, p.strike, p.right),
                        "qty_open": p.qty_open, "entry_price": p.entry_price, "stop": p.stop,
                        "strategy": p.strategy})
    return out


def outputs(out: Path, ledger: str | None) -> dict[str, str]:
    """Where the day's files are."""
    found = {"outbox_html": out / "outbox.html", "outbox": out / "outbox.jsonl", "journal": out / "journal.jsonl",
             "reports": out / "reports"}
    paths = {k: str(v) for k, v in found.items() if v.exists()}
    if ledger:
        paths["ledger"] = ledger
    return paths


def closing_lines(summary: dict[str, Any]) -> list[str]:
    """The demo's last words on stderr: outputs, rejections with their top reasons, what is open."""
    lines = ["outputs:"]
    o = summary.get("outputs", {})
    for key, label, what in (("outbox_html", "outbox.html", "open in a browser: approval cards + subscriber feeds"),
                             ("reports", "reports", plural(len(summary.get('reports', [])), 'HTML file')),
                             ("journal", "journal", "every bus event, one JSON line each"),
                             ("ledger", "ledger", "the day's database")):
        if key in o:
            lines.append(f"  {label:<12} {o[key]}  ({what})")
    r = summary.get("rejections", {})
    rules = r.get("rules", {})
    lines.append(f"rejected: {summary.get('rejected', 0)} of {summary.get('signals', 0)} signals"
                 + (f" ({r.get('by_overseer', 0)} by the overseer's rules; a signal can break several)"
                    if r.get("by_overseer") else ""))
    for code, n in list(rules.items())[:3]:
        eg = r.get("rule_examples", {}).get(code, "")
        lines.append(f"  {code:<20} {n:3d}" + (f"  e.g. {eg[:90]}" if eg else ""))
    for key, label in (("cards", "cards"), ("refused_at_placement", "refused at placement"),
                       ("entries_unfilled", "entries cancelled unfilled")):
        if r.get(key):
            lines.append(f"  {label}: " + ", ".join(f"{k} {v}" for k, v in r[key].items()))
    left = summary.get("open_positions", [])
    lines.append(f"left open: {plural(len(left), 'position')}" + (":" if left else ""))
    for p in left[:10]:
        lines.append(f"  {p['contract']} x{p['qty_open']} ({p['strategy']}, entry {option_price(p['entry_price'])})")
    if len(left) > 10:
        lines.append(f"  ... and {len(left) - 10} more")
    return lines
