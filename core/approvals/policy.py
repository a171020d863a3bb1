"""The approval policy: who decides a signal the overseer did not reject.

- ``manual``  every signal waits for the admin (default).
- ``auto``    the overseer's ``approve`` is final (demo); ``caution`` still waits.
- ``auto_if`` auto only when the overseer said ``approve`` and the premium at risk is
  under ``approval.auto_if_max_risk_pct`` of the account.

The policy in force can be changed at run time (Telegram ``/mode``); the override
lives in hash ``runtime`` field ``approval_policy`` and beats the config.
"""

from __future__ import annotations

from typing import Literal

import redis.asyncio as aioredis

from core.bus.keys import Keys
from core.config.model import Settings

Policy = Literal["manual", "auto", "auto_if"]
POLICIES: tuple[Policy, ...] = ("manual", "auto", "auto_if")


async def current_policy(redis: aioredis.Redis, keys: Keys, settings: Settings) -> Policy:
    override = await redis.hget(keys.hash("runtime"), "approval_policy")
    if override in POLICIES:
        return override  # type: ignore[return-value]
    return settings.approval.policy


def auto_decides(policy: Policy, decision: str, risk_pct: float, max_risk_pct: float) -> bool:
    if decision != "approve":
        return False
    if policy == "auto":
        return True
    if policy == "auto_if":
        return risk_pct < max_risk_pct
    return False
