"""The chaos run's audit: what Redis and the outbox say happened, checked against what must.

Read after every process has stopped: the event streams (``orders`` for OrderEvent and
FillEvent, ``approvals``, ``positions``, ``reports``, ``deliveries``), the distributor's schedule
and records, every consumer group's pending list, the dead-letter streams, the execution
service's waiting entries, the approval cards, and ``outbox.jsonl`` (the demo's only sink).

Definitions (each finding names its correlation id, and its channel / tier / event for posts):

duplicate
    an entry order: more than one entry order id for one approved correlation id;
    a fill: one ``fill_id`` twice, or fills of an order adding up to more than the order's size;
    a position: more than one ``entry`` (or ``closed``) PositionEvent for one position id, or
    more contracts in positions than were bought;
    a post: one message id (derived from correlation id, event id, channel, tier) twice in the
    outbox, or two ``delivered`` DeliveryEvents for one of them.
lost
    an approved signal whose entry order ``ent-<signal id>`` never reached a terminal status
    (filled, cancelled, rejected), approved before ``end - grace`` (later ones, and trades with a
    fill after ``end - grace`` whose position events do not add up, are ``unfinished_at_end``:
    the processes stop before they could finish, as for posts due after the end);
    an order reported filled (``filled_qty``) without FillEvents adding up to it;
    a fill without its position event (entry fills: an ``entry`` PositionEvent of that size for the
    correlation id; exit fills: ``partial_exit`` / ``closed`` events of that size);
    a post due before ``end - grace`` (PositionEvent / approved report ``ts`` + the tier's delay,
    on every route of ``bot.distribution.render.ROUTES``) that is not in the outbox and not
    scheduled either; a ``delivered`` DeliveryEvent whose message is not in the outbox.
overdue
    a post that IS scheduled (the distributor's sorted set) but still not delivered, although
    due before ``end - grace``.
stuck
    a consumer-group entry still pending (read, never acked) after every process stopped cleanly;
    an entry order still waiting for its first quote past its deadline; an approval card still
    pending past its expiry.
dead letters (reported, not counted above): entries of the dead-letter streams.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from bot.distribution.render import ROUTES, report_path, validate_position
from bot.distribution.service import idempotency_key
from bot.publishers.outbox import outbox_message_id
from core.bus.events import (
    ApprovalEvent,
    DeliveryEvent,
    Event,
    FillEvent,
    OrderEvent,
    PositionEvent,
    ReportEvent,
)
from core.bus.events import decode as decode_event
from core.bus.keys import Keys
from core.positions.service import ADOPTED

TERMINAL = frozenset({"filled", "cancelled", "rejected"})


def read_stream(r: Any, keys: Keys, stream: str) -> list[Event]:
    out: list[Event] = []
    start = "-"
    while True:
        batch = r.xrange(keys.stream(stream), min=start, max="+", count=5000)
        for _id, fields in batch:
            try:
                out.append(decode_event(fields))
            except ValueError:
                continue  # a malformed entry is the consumers' business (dead-lettered there)
        if len(batch) < 5000:
            return out
        start = "(" + batch[-1][0]


def read_outbox(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            lines.append({"message_id": "<torn line>"})
    return lines


class Findings:
    def __init__(self) -> None:
        self.items: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def add(self, kind: str, what: str, **detail: Any) -> None:
        self.items[kind].append({"what": what, **detail})

    def count(self, kind: str) -> int:
        return len(self.items.get(kind, ()))


def audit(r: Any, keys: Keys, outbox: Path, *, end_ms: int, grace_ms: int, delays: dict[str, float]) -> dict[str, Any]:
    """Counts and findings (see the module docstring). ``delays``: tier -> delay seconds."""
    f = Findings()
    orders_stream = read_stream(r, keys, "orders")
    order_events = [e for e in orders_stream if isinstance(e, OrderEvent)]
    fills = [e for e in orders_stream if isinstance(e, FillEvent)]
    approvals = [e for e in read_stream(r, keys, "approvals") if isinstance(e, ApprovalEvent)]
    positions = [e for e in read_stream(r, keys, "positions") if isinstance(e, PositionEvent)]
    reports = [e for e in read_stream(r, keys, "reports") if isinstance(e, ReportEvent)]
    deliveries = [e for e in read_stream(r, keys, "deliveries") if isinstance(e, DeliveryEvent)]
    lines = read_outbox(outbox)

    # ---------------------------------------------------------------- orders
    by_order: dict[str, list[OrderEvent]] = defaultdict(list)
    for e in order_events:
        by_order[e.order_id].append(e)
    entry_ids_by_corr: dict[str, set[str]] = defaultdict(set)
    for e in order_events:
        if e.purpose == "entry":
            entry_ids_by_corr[e.correlation_id].add(e.order_id)
    approved = [a for a in approvals if a.decision == "approved"]
    quiet_from = end_ms - grace_ms  # work started in the quiet window before the end may not finish
    unfinished = 0
    for a in approved:
        oid = f"ent-{a.signal.id}"
        statuses = {e.status for e in by_order.get(oid, [])}
        if not statuses & TERMINAL:
            if a.ts > quiet_from:
                unfinished += 1
                continue
            f.add("lost", "approved signal without a terminal entry order", correlation_id=a.correlation_id,
                  order_id=oid, statuses=sorted(statuses))
    for corr, ids in entry_ids_by_corr.items():
        if len(ids) > 1:
            f.add("duplicates", "more than one entry order for one correlation id", correlation_id=corr,
                  order_ids=sorted(ids))

    # ---------------------------------------------------------------- fills
    fill_ids = Counter(x.fill_id for x in fills)
    for fid, n in fill_ids.items():
        if n > 1:
            f.add("duplicates", "fill published more than once", fill_id=fid, times=n)
    unique_fills = {x.fill_id: x for x in fills}.values()
    filled_by_order: Counter[str] = Counter()
    for x in unique_fills:
        filled_by_order[x.order_id] += x.qty
    for oid, evs in by_order.items():
        size = max(e.qty for e in evs)
        reported = max(e.filled_qty for e in evs)
        if filled_by_order[oid] > size:
            f.add("duplicates", "fills exceed the order's size", order_id=oid, filled=filled_by_order[oid],
                  size=size, correlation_id=evs[0].correlation_id)
        if filled_by_order[oid] < reported:
            f.add("lost", "order reported filled without its fill events", order_id=oid, reported=reported,
                  fill_events=filled_by_order[oid], correlation_id=evs[0].correlation_id)

    # ---------------------------------------------------------------- positions
    bought: Counter[str] = Counter()
    sold: Counter[str] = Counter()
    # a trade with a fill in the quiet window: its position event may still be in flight when the
    # processes stop; counted as unfinished when it does not add up, never as lost
    late = {x.correlation_id for x in unique_fills if x.ts > quiet_from}
    for x in unique_fills:
        (bought if x.purpose == "entry" else sold)[x.correlation_id] += x.qty
    opened: Counter[str] = Counter()
    reduced: Counter[str] = Counter()
    kinds_by_pos: dict[str, Counter[str]] = defaultdict(Counter)
    pos_ids = Counter(p.id for p in positions)
    for pid, n in pos_ids.items():
        if n > 1:
            f.add("duplicates", "position event published more than once", event_id=pid, times=n)
    unique_pos = list({p.id: p for p in positions}.values())
    for p in unique_pos:
        kinds_by_pos[p.position_id][p.kind] += 1
        if p.kind == "entry":
            opened[p.correlation_id] += p.qty
        elif p.kind in ("partial_exit", "closed"):
            reduced[p.correlation_id] += p.qty
    for pid, kinds in kinds_by_pos.items():
        for kind in ("entry", "closed"):
            if kinds[kind] > 1:
                f.add("duplicates", f"more than one {kind} event for one position", position_id=pid,
                      times=kinds[kind])
    for corr in late:
        if opened[corr] != bought[corr] or reduced[corr] != sold[corr]:
            unfinished += 1
        for c in (bought, opened, sold, reduced):
            c.pop(corr, None)
    for corr in set(bought) | set(opened):
        if opened[corr] < bought[corr]:
            f.add("lost", "entry fill without its position", correlation_id=corr, bought=bought[corr],
                  in_positions=opened[corr])
        elif opened[corr] > bought[corr]:
            f.add("duplicates", "position holds more than was bought", correlation_id=corr,
                  bought=bought[corr], in_positions=opened[corr])
    for corr in set(sold) | set(reduced):
        if reduced[corr] < sold[corr]:
            f.add("lost", "exit fill without its position update", correlation_id=corr, sold=sold[corr],
                  in_positions=reduced[corr])
        elif reduced[corr] > sold[corr]:
            f.add("duplicates", "position reduced by more than was sold", correlation_id=corr, sold=sold[corr],
                  in_positions=reduced[corr])

    # ---------------------------------------------------------------- posts
    in_outbox = Counter(str(x.get("message_id")) for x in lines)
    for mid, n in in_outbox.items():
        if n > 1:
            f.add("duplicates", "post written more than once", message_id=mid, times=n)
    delivered = Counter((d.correlation_id, d.channel, d.tier, d.message_id) for d in deliveries
                        if d.status == "delivered")
    for (corr, channel, tier, mid), n in delivered.items():
        if n > 1:
            f.add("duplicates", "delivery recorded twice", correlation_id=corr, channel=channel, tier=tier,
                  message_id=mid, times=n)
        if mid not in in_outbox:
            f.add("lost", "delivery recorded but not in the outbox", correlation_id=corr, channel=channel,
                  tier=tier, message_id=mid)
    scheduled = {str(m): float(s) for m, s in r.zrange(keys.zset("deliveries"), 0, -1, withscores=True)}
    expected: list[tuple[str, str, str, str, str, int]] = []  # corr, source id, event, channel, tier, due
    for p in unique_pos:
        if validate_position(p) is not None or p.strategy == ADOPTED:
            continue
        for channel, tier in ROUTES[p.kind]:
            expected.append((p.correlation_id, p.id, p.kind, channel, tier, p.ts + int(delays[tier] * 1000)))
    seen_reports: set[str] = set()
    for rep in reports:
        source = rep.report_id or rep.id
        if rep.status != "approved" or source in seen_reports:
            continue
        seen_reports.add(source)
        for channel, tier in ROUTES["report"]:
            if report_path(rep, tier) is not None:
                expected.append((rep.correlation_id, source, "report", channel, tier,
                                 rep.ts + int(delays[tier] * 1000)))
    lateness: list[float] = []
    due_ms_by_mid = {}
    after_end = 0
    for corr, source, event, channel, tier, due in expected:
        idem = idempotency_key(corr, source, channel, tier)
        mid = outbox_message_id(channel, idem)
        due_ms_by_mid[mid] = due
        if mid in in_outbox:
            continue
        if due > end_ms - grace_ms:
            after_end += 1
            continue
        kind = "overdue" if idem in scheduled else "lost"
        f.add(kind, "post due but not delivered" if kind == "overdue" else "post never scheduled",
              correlation_id=corr, channel=channel, tier=tier, event=event, due_ms=due, idempotency_key=idem)
    for d in deliveries:
        if d.status == "delivered":
            lateness.append((d.ts - d.due_ts) / 1000.0)

    # ---------------------------------------------------------------- stuck
    pending_total = 0
    for stream_key in sorted(r.scan_iter(match=keys.stream("*"), count=1000)):
        for group in r.xinfo_groups(stream_key):
            n = int(group.get("pending") or 0)
            if n:
                pending_total += n
                f.add("stuck", "entries read but never acknowledged", stream=stream_key, group=group["name"],
                      pending=n)
    for order_id, raw in r.hgetall(keys.hash("pending_entries")).items():
        body = json.loads(raw)
        if int(body.get("deadline_ms", 0)) < end_ms - grace_ms:
            f.add("stuck", "entry order still waiting for a quote past its deadline", order_id=order_id)
    for card, score in r.zrange(keys.zset("cards"), 0, -1, withscores=True):
        if float(score) < end_ms - grace_ms:
            f.add("stuck", "approval card pending past its expiry", card=card, expires_ms=int(score))
    dead: dict[str, int] = {}
    for group in r.smembers(keys.dlq_index()):
        n = int(r.xlen(keys.dlq(group)))
        if n:
            dead[group] = n
    dead_posts = int(r.xlen(keys.key("dead_letter", "deliveries")))
    if dead_posts:
        dead["deliveries"] = dead_posts

    lateness.sort()
    feeds = {}
    for stream in ("quotes", "analytics", "signals", "approvals", "orders", "positions"):
        feeds[stream] = None
        for _id, fields in r.xrevrange(keys.stream(stream), count=20):
            try:
                feeds[stream] = round((end_ms - decode_event(fields).ts) / 1000)
                break
            except ValueError:
                continue  # a malformed entry: the consumers dead-letter it; look further back
    return {
        "last_event_s_before_end": feeds,
        "orders": len(by_order),
        "fills": len(fill_ids),
        "positions": len(kinds_by_pos),
        "position_events": len(unique_pos),
        "approved": len(approved),
        "posts": len(lines),
        "posts_expected": len(expected),
        "posts_due_after_end": after_end,
        "unfinished_at_end": unfinished,
        "duplicates": f.count("duplicates"),
        "lost": f.count("lost"),
        "overdue": f.count("overdue"),
        "stuck": f.count("stuck"),
        "dead_letters": dead,
        "delivery_lateness_s": {
            "p50": lateness[len(lateness) // 2] if lateness else None,
            "p99": lateness[min(len(lateness) - 1, int(len(lateness) * 0.99))] if lateness else None,
            "max": lateness[-1] if lateness else None},
        "findings": {k: v[:20] for k, v in f.items.items()},
    }
