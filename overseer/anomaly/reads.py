"""Everything one anomaly timer check reads, in one pipelined round trip (a second one only when
bus dead-letter streams exist, for their lengths).

The check used to read key by key (alerts, quotes twice, chain times, feed times, broker, vendor
quotes, account, dead-letter lengths and index, heartbeats, strategy switches: a dozen round trips
every 30 s). All of it is read before any detector runs; the check's own writes go on its tx and
are committed after, so reading first sees exactly what reading along the way saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from core.bus.keys import Keys
from overseer._util import text


@dataclass(frozen=True)
class CheckReads:
    alerts: dict[Any, Any]                   # AlertBook hash, raw
    account: dict[Any, Any]                  # hash ``account``, raw
    heartbeats: dict[Any, Any]               # hash ``heartbeat``, raw
    switches: dict[Any, Any]                 # hash ``strategies``, raw
    dlq_known: dict[str, int]                # group -> length seen at the last check
    dlq_lens: dict[str, int]                 # group -> current XLEN, groups sorted
    quotes: list[Any] = field(default_factory=list)     # session only, per market symbol
    chain_meta: list[Any] = field(default_factory=list)
    vendors: list[Any] = field(default_factory=list)
    feeds_seen: dict[str, str] = field(default_factory=dict)
    broker_connected: Any = None


def _int(value: Any) -> int:
    try:
        return int(text(value) or 0)
    except ValueError:
        return 0


async def read_for_check(redis: aioredis.Redis, keys: Keys, alerts_key: str, symbols: list[str],
                         in_session: bool) -> CheckReads:
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(alerts_key)
    pipe.hgetall(keys.hash("account"))
    pipe.hgetall(keys.hash("heartbeat"))
    pipe.hgetall(keys.hash("strategies"))
    pipe.hgetall(keys.hash("anomaly_dlq"))
    pipe.smembers(keys.dlq_index())
    feeds = in_session and bool(symbols)
    if in_session:
        pipe.hget(keys.hash("broker"), "connected")
    if feeds:
        pipe.mget([keys.snapshot("quote", s) for s in symbols])
        pipe.mget([keys.snapshot("chain_meta", s) for s in symbols])
        pipe.mget([keys.snapshot("vendor_quote", s) for s in symbols])
        pipe.hgetall(keys.hash("anomaly_feeds"))
    res = await pipe.execute()
    alerts, account, beats, switches, dlq_known, members = res[:6]
    rest = res[6:]
    groups = sorted(text(g) for g in members)
    lens: dict[str, int] = {}
    if groups:
        lp = redis.pipeline(transaction=False)
        for g in groups:
            lp.xlen(keys.dlq(g))
        lens = {g: int(n) for g, n in zip(groups, await lp.execute(), strict=True)}
    extra: dict[str, Any] = {}
    if in_session:
        extra["broker_connected"] = rest[0]
    if feeds:
        quotes, chains, vendors, seen = rest[1:5]
        extra.update(quotes=quotes, chain_meta=chains, vendors=vendors,
                     feeds_seen={text(k): text(v) for k, v in seen.items()})
    return CheckReads(alerts=alerts, account=account, heartbeats=beats, switches=switches,
                      dlq_known={text(k): _int(v) for k, v in dlq_known.items()}, dlq_lens=lens, **extra)
