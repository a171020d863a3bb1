"""Every Redis key name in the system is built here; no other file writes a key literal.

Layout (``<p>`` is ``redis.key_prefix``):

- ``<p>:s:<stream>``              event streams (one per event family)
- ``<p>:dlq:<group>``             dead-letter stream of a consumer group (groups listed in ``<p>:dlqs``)
- ``<p>:done:<group>:<event_id>`` handled-marker (idempotent re-delivery), with TTL
- ``<p>:tries:<group>``           hash event_id -> failed attempts
- ``<p>:halt``                    hash: the persistent halt state
- ``<p>:snap:<kind>:<symbol>``    latest snapshots (quote, chain, analytics) with TTL
- ``<p>:h:<name>``                state hashes (positions, orders, approvals, cards, threads ...)
- ``<p>:z:<queue>``               scheduled work, scored by due time (epoch ms)
- ``<p>:k:<name>:<id>``           single-purpose keys (dedupe, cooldown, idempotency, claims)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "q"

    def stream(self, name: str) -> str:
        return f"{self.prefix}:s:{name}"

    def dlq(self, group: str) -> str:
        return f"{self.prefix}:dlq:{group}"

    def done(self, group: str, event_id: str) -> str:
        return f"{self.prefix}:done:{group}:{event_id}"

    def dlq_index(self) -> str:
        """Set of consumer groups that have a dead-letter stream (watchers read it, no SCAN)."""
        return f"{self.prefix}:dlqs"

    def tries(self, group: str) -> str:
        """Hash of a group's failed-attempt counts, one field per pending entry (``tries_field``)."""
        return f"{self.prefix}:tries:{group}"

    @staticmethod
    def tries_field(stream_key: str, entry_id: str) -> str:
        """An entry's field in ``tries``: stream ids are unique only within their stream (two streams
        written in one MULTI in the same millisecond both get ``<ms>-0``), so the stream is part of it."""
        return f"{stream_key}|{entry_id}"

    def halt(self) -> str:
        return f"{self.prefix}:halt"

    def snapshot(self, kind: str, symbol: str) -> str:
        return f"{self.prefix}:snap:{kind}:{symbol}"

    def hash(self, name: str) -> str:
        return f"{self.prefix}:h:{name}"

    def zset(self, queue: str) -> str:
        return f"{self.prefix}:z:{queue}"

    def key(self, name: str, ident: str) -> str:
        return f"{self.prefix}:k:{name}:{ident}"

    def pattern(self) -> str:
        """Glob matching every key of this prefix (used to wipe a demo run)."""
        return f"{self.prefix}:*"
