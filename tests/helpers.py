"""Test helpers shared across test folders."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from core.bus.bus import Bus
from core.clock.calendar import NyseCalendar
from core.config.loader import load_settings
from core.config.model import Settings
from core.config.secrets import Secrets
from core.runtime.service import Context


def make_context(bus: Bus, settings: Settings | None = None, secrets: Secrets | None = None,
                 out_dir: str | None = None, **overrides: object) -> Context:
    """A service Context on the given bus. ``overrides`` are applied to default settings via
    nested dicts, e.g. ``make_context(bus, approval={"policy": "auto"})``."""
    if settings is None:
        settings = load_settings(environ={})
        if overrides:
            data = settings.model_dump()
            for section, values in overrides.items():
                if isinstance(values, dict):
                    data[section] = {**data.get(section, {}), **values}
                else:
                    data[section] = values
            # the mode decides the parts: a test of the real publishers (sink live) or of live mode
            # gets the whole live configuration, as production would
            if data["distribution"].get("sink") == "live" or data.get("mode") == "live":
                data["mode"] = "live"
                data["market"]["source"] = "ibkr"
                data["execution"]["broker"] = "ibkr"
            settings = Settings.model_validate(data)
    if secrets is None:
        secrets = Secrets(_env_file=None)  # type: ignore[call-arg]
    return Context(settings=settings, secrets=secrets, bus=bus, clock=bus.clock,
                   calendar=NyseCalendar(), out_dir=out_dir)


async def until(cond: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Let the loop run until ``cond()`` is truthy (AssertionError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        result = cond()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)


async def until_async(fetch: Callable[[], Any], pick: Callable[[Any], Any], timeout: float, what: str) -> Any:
    """Poll an async ``fetch()`` until ``pick(result)`` is truthy; return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = pick(await fetch())
        if got:
            return got
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
