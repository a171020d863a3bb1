"""The demo's upstreams during a chaos run: the local fakes of the Anthropic API (the overseer's
model review) and of the Telegram Bot API (the admin bot), with a thread that keeps queueing
faults on them: 429 (with retry-after), 5xx, slow answers and dropped connections.

Subscriber posts have no upstream in demo: the mode table (``core/config/modes.py``) allows only
the local outbox there, and the chaos run keeps that line; the outbox is what the audit reads.
"""

from __future__ import annotations

import random
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegram

ADMIN_ID = 424242
ANTHROPIC_KINDS = ("429", "500", "529", "slow", "drop")
TELEGRAM_KINDS = ("429", "5xx", "slow", "drop")


class Upstreams:
    def __init__(self, rng: random.Random, *, every_s: tuple[float, float] = (0.5, 2.0)) -> None:
        self.rng = rng
        self.every_s = every_s
        self.anthropic = FakeAnthropic()
        self.telegram = FakeTelegram()
        self.injected: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> dict[str, str]:
        """Start both fakes; the environment a service process needs to use them."""
        a = self.anthropic.start()
        t = self.telegram.start()
        return {"ANTHROPIC_API_KEY": "sk-ant-chaos-fake", "ANTHROPIC_BASE_URL": a,
                "TELEGRAM_BOT_TOKEN": DEFAULT_TOKEN, "TELEGRAM_API_BASE": t,
                "TELEGRAM_ADMIN_IDS": str(ADMIN_ID), "TELEGRAM_ADMIN_CHAT_ID": str(ADMIN_ID),
                "QUANT_TELEGRAM__ENABLED": "true"}

    def inject_forever(self) -> None:
        self._thread = threading.Thread(target=self._run, name="chaos-faults", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.rng.uniform(*self.every_s)):
            self.inject_one()

    def inject_one(self) -> None:
        if self.rng.random() < 0.5:
            kind = self.rng.choice(ANTHROPIC_KINDS)
            self.anthropic.fail_next(kind, delay=self.rng.uniform(1.0, 4.0), retry_after=0.5)
            self.injected[f"anthropic:{kind}"] += 1
        else:
            kind = self.rng.choice(TELEGRAM_KINDS)
            self.telegram.fail_next("*", kind, retry_after=1, delay=self.rng.uniform(1.0, 4.0))
            self.injected[f"telegram:{kind}"] += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for fake in (self.anthropic, self.telegram):
            fake.stop()

    def summary(self) -> dict[str, Any]:
        """Faults queued, faults that hit a request, and requests seen, per upstream."""
        a_reqs = self.anthropic.requests(None)
        t_reqs = self.telegram.requests()
        hit = Counter(f"anthropic:{r.fault}" for r in a_reqs if r.fault)
        hit.update(f"telegram:{r.fault}" for r in t_reqs if getattr(r, "fault", None))
        return {"injected": dict(sorted(self.injected.items())), "hit": dict(sorted(hit.items())),
                "requests": {"anthropic": len(a_reqs), "telegram": len(t_reqs)},
                "admin_messages": len(self.telegram.sent_messages())}
