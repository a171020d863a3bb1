"""Builders shared by the overseer tests."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from core.bus.bus import Bus
from core.bus.events import AlertEvent, AuditEvent, Event, SignalEvent, VerdictEvent, decode
from core.bus.keys import Keys
from core.clock.calendar import NY
from core.config.secrets import Secrets
from core.domain.signal import Signal
from tests.helpers import make_context

# Friday 2026-11-20, 11:00 New York: a normal full session.
NOW = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)
SWING_EXPIRY = date(2026, 12, 18)
API_KEY = "sk-ant-test-overseer"


def ny(h: int, m: int, s: int = 0, day: int = 20) -> datetime:
    return datetime(2026, 11, day, h, m, s, tzinfo=NY).astimezone(UTC)


def signal_dict(now: datetime = NOW, **over: Any) -> dict[str, Any]:
    """A SIGNAL.json that passes every rule at ``now`` with the default state.
    premium = 2 x 5.00 x 100 = $1,000 = 1% of the default $100k account."""
    d: dict[str, Any] = {
        "id": "sig-1",
        "ts": (now - timedelta(seconds=1)).isoformat(),
        "strategy": "directional_swing",
        "symbol": "SPY",
        "instrument": {
            "type": "OPT",
            "expiry": SWING_EXPIRY.isoformat(),
            "strike": 590.0,
            "right": "C",
            "multiplier": 100,
        },
        "side": "BUY",
        "qty": 2,
        "limit": 5.0,
        "quote": {"bid": 4.95, "ask": 5.05, "ts": (now - timedelta(seconds=2)).isoformat()},
        "stop": 2.5,
        "targets": [8.0, 10.0],
        "confidence": 70,
        "horizon": "swing",
        "direction": "bullish",
        "triggers": ["price above gamma flip", "call wall 600 above"],
    }
    d.update(copy.deepcopy(over))
    return d


def with_path(d: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(d)
    cur = out
    parts = path.split(".")
    for k in parts[:-1]:
        cur = cur[k]
    cur[parts[-1]] = value
    return out


def signal(now: datetime = NOW, **over: Any) -> Signal:
    return Signal.model_validate(signal_dict(now, **over))


def secrets(fake: Any = None, key: str | None = API_KEY) -> Secrets:
    return Secrets(
        _env_file=None,
        anthropic_api_key=key if fake is not None else None,  # type: ignore[call-arg]
        anthropic_base_url=fake.base_url if fake is not None else None,
    )


def context(bus: Bus, fake: Any = None, *, overseer: dict[str, Any] | None = None, **sections: Any):
    ctx = make_context(bus, overseer=overseer or {}, **sections)
    ctx.secrets = secrets(fake)
    return ctx


async def seed_quote(redis: Any, keys: Keys, now: datetime, symbol: str = "SPY", **fields: Any) -> None:
    body = {
        "symbol": symbol,
        "bid": 589.9,
        "ask": 590.1,
        "last": 590.0,
        "quote_ts": int(now.timestamp() * 1000),
    }
    body.update(fields)
    await redis.set(keys.snapshot("quote", symbol), json.dumps(body))


async def events(redis: Any, keys: Keys, stream: str) -> list[Event]:
    return [decode(f) for _id, f in await redis.xrange(keys.stream(stream))]


async def verdicts(redis: Any, keys: Keys) -> list[VerdictEvent]:
    return [e for e in await events(redis, keys, "verdicts") if isinstance(e, VerdictEvent)]


async def alerts(redis: Any, keys: Keys) -> list[AlertEvent]:
    return [e for e in await events(redis, keys, "alerts") if isinstance(e, AlertEvent)]


async def audits(redis: Any, keys: Keys, action: str | None = None) -> list[AuditEvent]:
    out = [e for e in await events(redis, keys, "audit") if isinstance(e, AuditEvent)]
    return [e for e in out if action is None or e.action == action]


async def review_one(svc: Any, bus: Bus, sig: Signal) -> VerdictEvent:
    """Handle one SignalEvent like the consumer does (tx committed) and return its verdict."""
    ev = bus.make(SignalEvent, signal=sig)
    tx = bus.tx()
    await svc.handle(ev, tx)
    await tx.commit()
    out = [e for e in tx.events if isinstance(e, VerdictEvent)]
    assert len(out) == 1
    assert out[0].correlation_id == ev.correlation_id
    return out[0]


def review_input(**over: Any) -> dict[str, Any]:
    base = {
        "decision": "approve",
        "confidence": 80,
        "concerns": [],
        "summary": "Clean setup.",
        "explanation": "Buying 2 SPY 590 calls at 5.00 risks $1,000, 1% of the account.",
    }
    base.update(over)
    return base
