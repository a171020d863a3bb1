"""Real-time runner: every service's consumer and timer run concurrently on the
wall clock. SIGINT/SIGTERM set a stop flag: consumers finish the event in hand
(and ack it), timers stop, services close their connections."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from datetime import timedelta

from core.runtime import metrics
from core.runtime.consumers import consumer_for
from core.runtime.service import Service

log = logging.getLogger("quanticity.runner")


class LiveRunner:
    def __init__(self, services: Sequence[Service], *, poll_block_ms: int = 1000) -> None:
        self.services = list(services)
        self.stopping = asyncio.Event()
        self.poll_block_ms = poll_block_ms

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.request_stop)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - non-unix
                pass

    def request_stop(self) -> None:
        if not self.stopping.is_set():
            log.warning("stop requested: finishing events in hand")
        self.stopping.set()

    async def _consume(self, svc: Service) -> None:
        cons = consumer_for(svc)
        if cons is None:
            return
        await cons.ensure_groups()
        while not self.stopping.is_set():
            try:
                await cons.poll(svc.handle, block_ms=self.poll_block_ms)
            except Exception:
                log.exception("service=%s consumer loop error", svc.name)
                await asyncio.sleep(1.0)

    async def _timers(self, svc: Service) -> None:
        clock = svc.clock
        next_tick = clock.now()
        while not self.stopping.is_set():
            now = clock.now()
            try:
                nd = await svc.next_due(now)
            except Exception:  # a Redis blip must not end this loop for good: log, wait, ask again
                log.exception("service=%s next_due error", svc.name)
                metrics.ERRORS.labels(svc.name).inc()
                await self._pause(1.0)
                continue
            due_interval = svc.interval_s is not None and now >= next_tick
            if due_interval or (nd is not None and nd <= now):
                try:
                    await svc.on_timer(now)
                except Exception:
                    log.exception("service=%s timer error", svc.name)
                if due_interval:
                    next_tick = now + timedelta(seconds=svc.interval_s or 1)
                continue
            waits = [1.0]
            if svc.interval_s is not None:
                waits.append((next_tick - now).total_seconds())
            if nd is not None:
                waits.append((nd - now).total_seconds())
            await self._pause(max(0.01, min(waits)))

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def _wakes(self, svc: Service) -> None:
        """Run ``on_wake`` whenever the service is woken by a push (a broker fill, say)."""
        stop = asyncio.create_task(self.stopping.wait())
        try:
            while not self.stopping.is_set():
                woken = asyncio.create_task(svc.woken.wait())
                await asyncio.wait({woken, stop}, return_when=asyncio.FIRST_COMPLETED)
                if not woken.done():
                    woken.cancel()
                    break
                svc.woken.clear()
                try:
                    await svc.on_wake(svc.clock.now())
                except Exception:
                    log.exception("service=%s wake handler error", svc.name)
                    await asyncio.sleep(0.5)
                    svc.wake()  # what was pushed is still queued: try again
        finally:
            stop.cancel()

    async def run(self, after_start: Callable[[], None] | None = None) -> None:
        for svc in self.services:
            await svc.start()
        if after_start is not None:
            after_start()
        tasks = []
        for svc in self.services:
            tasks.append(asyncio.create_task(self._consume(svc), name=f"{svc.name}-consume"))
            if svc.interval_s is not None or type(svc).next_due is not Service.next_due:
                tasks.append(asyncio.create_task(self._timers(svc), name=f"{svc.name}-timer"))
            if type(svc).on_wake is not Service.on_wake:
                tasks.append(asyncio.create_task(self._wakes(svc), name=f"{svc.name}-wake"))
        try:
            await self.stopping.wait()
        finally:
            self.stopping.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            for svc in self.services:
                try:
                    await svc.stop()
                except Exception:
                    log.exception("service=%s stop failed", svc.name)
