"""Builds the consumer of a service (one consumer group per service)."""

from __future__ import annotations

from core.bus.consumer import Consumer
from core.runtime.service import Service


def consumer_for(service: Service, instance: str = "c1") -> Consumer | None:
    if not service.streams:
        return None
    r = service.settings.redis
    return Consumer(service.bus, service.name, service.streams, name=instance,
                    claim_idle_ms=r.claim_idle_ms, max_deliveries=r.max_deliveries,
                    processed_ttl_s=r.processed_ttl_s, event_types=service.event_types)
