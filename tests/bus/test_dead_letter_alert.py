"""A dead-lettered event reaches the admin as a readable alert (the Telegram bot's template)."""

from __future__ import annotations

from bot.telegram.render import Renderer
from bot.telegram.views import alert_view
from core.bus.bus import Tx
from core.bus.consumer import Consumer
from core.bus.events import AlertEvent, ApprovalEvent, ControlEvent, Event, decode


async def test_dead_letter_alert_names_group_type_correlation_and_error(bus, redis_client, keys, sim_clock):
    async def handler(e: Event, tx: Tx) -> None:
        raise ValueError("limit is NaN")

    cons = Consumer(bus, "execution", ["control"], max_deliveries=2, retry_base_ms=10)
    await cons.ensure_groups()
    ev = bus.make(ControlEvent, correlation_id="sig-123", action="flatten", by="t")
    await bus.publish(ev)
    await cons.poll(handler)
    sim_clock.advance(1)
    await cons.poll(handler)
    alerts = [decode(f) for _, f in await redis_client.xrange(keys.stream("alerts"))]
    assert len(alerts) == 1 and isinstance(alerts[0], AlertEvent)
    a = alerts[0]
    assert a.correlation_id == "sig-123"
    text = Renderer().render("alert", a=alert_view(a, halted=False))
    assert text.splitlines()[0] == "⚠️ <b>WARNING</b> · DEAD_LETTER · execution"
    for part in ("execution gave up on a control event after 2 failed attempts", "ValueError: limit is NaN",
                 "correlation sig-123", f"event {ev.id}", "dead-letter stream"):
        assert part in text, part
    assert "Trading is HALTED" not in text


async def test_malformed_entries_are_dead_lettered_without_an_alert_flood(bus, redis_client, keys):
    """Undecodable entries are counted and dead-lettered (the anomaly watcher reports the stream
    growing); only a handling that kept failing names its event in an alert."""
    cons = Consumer(bus, "g1", ["approvals"])
    await cons.ensure_groups()
    for _ in range(3):
        await redis_client.xadd(keys.stream("approvals"), {"t": ApprovalEvent.model_fields["type"].default,
                                                           "d": "{bad"})

    async def handler(e: Event, tx: Tx) -> None:
        raise AssertionError("never called")

    await cons.poll(handler)
    assert cons.rejected == 3 and len(await redis_client.xrange(keys.dlq("g1"))) == 3
    assert await redis_client.xrange(keys.stream("alerts")) == []
