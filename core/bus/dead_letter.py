"""Moving an entry to its group's dead-letter stream, atomically with its ack.

Decision: an entry is dead-lettered for one of two reasons, both in one MULTI/EXEC with the
XACK (so it is neither lost nor handled twice): it cannot be decoded (malformed), or its
handling failed ``max_deliveries`` times. The second also publishes an :class:`AlertEvent`
``DEAD_LETTER`` (WARNING: the event model has no ERROR level, and CRITICAL means "trading is
halted" to the admin) naming the group, the event type, the correlation id and the last
error, so the admin learns which event was given up on and why, not only that a stream grew.
"""

from __future__ import annotations

from typing import Any

from core.bus.bus import Bus
from core.bus.events import AlertEvent, Event, encode

DLQ_MAXLEN = 100_000


async def dead_letter(bus: Bus, group: str, key: str, entry_id: str, fields: dict[str, Any], error: str,
                      *, event: Event | None = None, tries: int = 0) -> AlertEvent | None:
    """Dead-letter one entry of ``key`` (stream) for ``group``; with ``event`` (a handling that kept
    failing) also raise the admin alert. Returns the alert published, if any."""
    keys = bus.keys
    pipe = bus.redis.pipeline(transaction=True)
    pipe.xadd(keys.dlq(group), {"stream": key, "entry": entry_id, "error": error[:500], "tries": str(tries),
                                **{f"f_{k}": v for k, v in fields.items()}},
              maxlen=DLQ_MAXLEN, approximate=True)
    pipe.sadd(keys.dlq_index(), group)
    alert = None
    if event is not None:
        alert = bus.make(
            AlertEvent, correlation_id=event.correlation_id, code="DEAD_LETTER", severity="WARNING",
            state="raised", subject=group,
            message=(f"{group} gave up on a {event.type} event after {tries} failed attempts: "
                     f"{error[:300]}"),
            explanation=(f"correlation {event.correlation_id}, event {event.id}, stream entry {entry_id}. "
                         f"It is kept in the dead-letter stream {keys.dlq(group)}; nothing was done with it."))
        pipe.xadd(bus.stream_key(alert), encode(alert), maxlen=bus.maxlen, approximate=True)
    pipe.xack(key, group, entry_id)
    pipe.hdel(keys.tries(group), keys.tries_field(key, entry_id))
    await pipe.execute()
    if alert is not None:
        bus.notify({bus.stream_key(alert)})
    return alert
