"""Real-time runner: every service's consumer and timer run concurrently on the
wall clock. SIGINT/SIGTERM set a stop flag: consumers finish the event in hand
(and ack it), timers stop, services close their connections.

Loops cannot die silently (decision): every loop of a service -- ``start``, ``consume``
(including creating its consumer groups), ``timer`` (``next_due``, ``on_timer`` and the tick
arithmetic) and ``wake`` -- runs its whole iteration inside one guard. Any exception is logged
with the service name (the traceback on the first error in a row, one line after that),
counted (``quanticity_loop_errors_total`` and the service's heartbeat) and retried after an
exponential backoff (``runner.backoff_initial_s`` doubling to ``runner.backoff_max_s``, reset
on the next completed iteration). A loop ends only when the runner stops.

Services start concurrently, each under its own supervisor, and a service's loops begin as
soon as ITS start succeeded: a slow or failing start holds only that service. A failed start
is retried with the same backoff and shows in the heartbeat (loop ``start``) and in
``status``. One exception kept from before: a :class:`ConfigError` or ``IbUnavailable`` on a
service's first start ends ``run`` (exit 2, one line), because retrying cannot fix a wrong
configuration and an operator starting the desk must see it at once.

Heartbeats (:mod:`core.runtime.heartbeat`) record each completed iteration in memory; one
flusher writes them to Redis at most every ``runner.heartbeat_every_s``. On a clean stop every
loop is marked ``stopped``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any

from core.config.loader import ConfigError
from core.runtime import metrics
from core.runtime.consumers import consumer_for
from core.runtime.heartbeat import Heartbeat
from core.runtime.loop_backoff import Backoff
from core.runtime.service import Service

log = logging.getLogger("quanticity.runner")

IDLE_MAX_S = 1.0  # timer and wake loops complete an iteration at least this often when idle
FATAL_AT_FIRST_START = ("IbUnavailable",)  # by name: the runner does not import the IBKR stack


def _fatal_at_start(exc: BaseException) -> bool:
    return isinstance(exc, ConfigError) or type(exc).__name__ in FATAL_AT_FIRST_START


class LiveRunner:
    def __init__(self, services: Sequence[Service], *, poll_block_ms: int | None = None,
                 heartbeat: Heartbeat | None = None) -> None:
        if not services:
            raise ValueError("no services to run")
        self.services = list(services)
        self.stopping = asyncio.Event()
        self.cfg = self.services[0].settings.runner
        self.poll_block_ms = self.cfg.poll_block_ms if poll_block_ms is None else poll_block_ms
        bus = self.services[0].bus
        self.heartbeat = heartbeat if heartbeat is not None else Heartbeat(bus.redis, bus.keys)
        self.fatal: BaseException | None = None
        self.started: set[str] = set()
        self._tried: set[str] = set()  # services that made their first start attempt
        self._all_tried = asyncio.Event()

    # ------------------------------------------------------------------ budgets
    def budget_s(self, loop: str) -> float:
        """How long one iteration of ``loop`` may take before it counts as stalled: its longest
        idle wait plus ``runner.stall_allowance_s`` for the work itself."""
        allowance = self.cfg.stall_allowance_s
        if loop == "consume":
            return self.poll_block_ms / 1000.0 + allowance
        if loop == "start":
            return self.cfg.backoff_max_s + allowance
        return IDLE_MAX_S + allowance

    # ------------------------------------------------------------------ stop
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

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass

    # ------------------------------------------------------------------ one iteration's outcome
    def _completed(self, svc: Service, loop: str, backoff: Backoff) -> None:
        if backoff.streak:
            log.info("service=%s %s loop recovered after %d error(s) in a row", svc.name, loop, backoff.streak)
        backoff.reset()
        self.heartbeat.done(svc.name, loop)
        metrics.LOOP_LAST_DONE.labels(svc.name, loop).set(time.time())

    async def _failed(self, svc: Service, loop: str, backoff: Backoff, exc: Exception) -> None:
        """Count and log one error of ``loop``, then wait out its backoff (or the stop)."""
        self.heartbeat.error(svc.name, loop, exc)
        metrics.LOOP_ERRORS.labels(svc.name, loop).inc()
        wait = backoff.next()
        if backoff.streak == 1:
            log.exception("service=%s %s loop error; retrying in %.2fs", svc.name, loop, wait)
        else:
            log.error("service=%s %s loop error #%d in a row (%s: %s); retrying in %.2fs", svc.name, loop,
                      backoff.streak, type(exc).__name__, exc, wait)
        await self._pause(wait)

    def _backoff(self) -> Backoff:
        return Backoff(self.cfg.backoff_initial_s, self.cfg.backoff_max_s)

    # ------------------------------------------------------------------ loops
    async def _start(self, svc: Service) -> bool:
        """Start ``svc``, retrying with backoff until it starts or the runner stops."""
        self.heartbeat.begin(svc.name, "start", self.budget_s("start"))
        backoff = self._backoff()
        try:
            while not self.stopping.is_set():
                try:
                    await svc.start()
                except Exception as exc:  # noqa: BLE001 - survive anything; logged and counted
                    if svc.name not in self._tried and _fatal_at_start(exc):
                        log.error("service=%s cannot start: %s", svc.name, exc)
                        self.fatal = exc
                        self.request_stop()
                        return False
                    self._mark_tried(svc)
                    await self._failed(svc, "start", backoff, exc)
                    continue
                if backoff.streak:
                    log.warning("service=%s started after %d failed attempt(s)", svc.name, backoff.streak)
                backoff.reset()
                self.heartbeat.finish(svc.name, "start")
                self.started.add(svc.name)
                return True
            return False
        finally:
            self._mark_tried(svc)

    def _mark_tried(self, svc: Service) -> None:
        """``svc`` made its first start attempt (idempotent); the last one sets ``_all_tried``."""
        self._tried.add(svc.name)
        if len(self._tried) >= len(self.services):
            self._all_tried.set()

    async def _consume(self, svc: Service) -> None:
        if not svc.streams:
            return
        self.heartbeat.begin(svc.name, "consume", self.budget_s("consume"))
        backoff = self._backoff()
        cons = None
        while not self.stopping.is_set():
            try:
                if cons is None:
                    built = consumer_for(svc)
                    if built is None:
                        return
                    await built.ensure_groups()
                    cons = built
                await cons.poll(svc.handle, block_ms=self.poll_block_ms)
            except Exception as exc:  # noqa: BLE001 - survive anything; logged and counted
                await self._failed(svc, "consume", backoff, exc)
                continue
            self._completed(svc, "consume", backoff)

    async def _timers(self, svc: Service) -> None:
        self.heartbeat.begin(svc.name, "timer", self.budget_s("timer"))
        backoff = self._backoff()
        clock = svc.clock
        next_tick = None
        while not self.stopping.is_set():
            try:
                now = clock.now()
                if next_tick is None:
                    next_tick = now
                nd = await svc.next_due(now)
                due_interval = svc.interval_s is not None and now >= next_tick
                if due_interval or (nd is not None and nd <= now):
                    await svc.on_timer(now)
                    metrics.TIMER_RUNS.labels(svc.name).inc()
                    if due_interval:  # only after it ran: a failed tick is retried after the backoff
                        next_tick = now + timedelta(seconds=svc.interval_s or 1)
                    wait = 0.0
                else:  # due times are on the service clock (simulated seconds under --speed);
                    # the idle cap is wall time (the loop's heartbeat)
                    due = []
                    if svc.interval_s is not None:
                        due.append((next_tick - now).total_seconds())
                    if nd is not None:
                        due.append((nd - now).total_seconds())
                    wait = max(0.01, min([IDLE_MAX_S, *(clock.wall_seconds(d) for d in due)]))
            except Exception as exc:  # noqa: BLE001 - survive anything; logged and counted
                await self._failed(svc, "timer", backoff, exc)
                continue
            self._completed(svc, "timer", backoff)
            if wait:
                await self._pause(wait)

    async def _wakes(self, svc: Service) -> None:
        """Run ``on_wake`` whenever the service is woken by a push (a broker fill, say); idle,
        the loop still completes an iteration every ``IDLE_MAX_S`` (its heartbeat)."""
        self.heartbeat.begin(svc.name, "wake", self.budget_s("wake"))
        backoff = self._backoff()
        stop = asyncio.create_task(self.stopping.wait())
        try:
            while not self.stopping.is_set():
                woken = asyncio.create_task(svc.woken.wait())
                try:
                    await asyncio.wait({woken, stop}, timeout=IDLE_MAX_S, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not woken.done():
                        woken.cancel()
                if self.stopping.is_set():
                    break
                try:
                    if svc.woken.is_set():
                        svc.woken.clear()
                        await svc.on_wake(svc.clock.now())
                except Exception as exc:  # noqa: BLE001 - survive anything; logged and counted
                    svc.wake()  # what was pushed is still queued: try again after the backoff
                    await self._failed(svc, "wake", backoff, exc)
                    continue
                self._completed(svc, "wake", backoff)
        finally:
            stop.cancel()

    async def _beats(self) -> None:
        """Flush heartbeats to Redis at most every ``runner.heartbeat_every_s`` (until stop)."""
        backoff = self._backoff()
        while not self.stopping.is_set():
            await self._pause(self.cfg.heartbeat_every_s)
            try:
                await self.heartbeat.flush()
            except Exception as exc:  # noqa: BLE001 - survive anything; logged and counted
                metrics.LOOP_ERRORS.labels("runner", "heartbeat").inc()
                log.warning("heartbeat flush failed (%s: %s); keeping it for the next one", type(exc).__name__, exc)
                await self._pause(backoff.next())
                continue
            backoff.reset()

    # ------------------------------------------------------------------ run
    async def _supervise(self, svc: Service) -> None:
        if not await self._start(svc):
            return
        loops: list[Coroutine[Any, Any, None]] = [self._consume(svc)]
        names = ["consume"]
        if svc.interval_s is not None or type(svc).next_due is not Service.next_due:
            loops.append(self._timers(svc))
            names.append("timer")
        if type(svc).on_wake is not Service.on_wake:
            loops.append(self._wakes(svc))
            names.append("wake")
        tasks = [asyncio.create_task(c, name=f"{svc.name}-{n}") for c, n in zip(loops, names, strict=True)]
        await asyncio.gather(*tasks)

    async def _announce(self, after_start: Callable[[], None] | None) -> None:
        """``after_start`` once every service has made its first start attempt."""
        await self._all_tried.wait()
        if after_start is not None and self.fatal is None and not self.stopping.is_set():
            after_start()
        failed = [s.name for s in self.services if s.name not in self.started]
        if failed and not self.stopping.is_set():
            log.error("not started yet (retrying with backoff): %s", ", ".join(failed))

    async def run(self, after_start: Callable[[], None] | None = None) -> None:
        supervisors = [asyncio.create_task(self._supervise(svc), name=f"{svc.name}-supervisor")
                       for svc in self.services]
        announce = asyncio.create_task(self._announce(after_start), name="runner-announce")
        beats = asyncio.create_task(self._beats(), name="runner-heartbeat")
        try:
            await self.stopping.wait()
        finally:
            self.stopping.set()
            await asyncio.gather(*supervisors, return_exceptions=True)
            announce.cancel()
            for svc in self.services:
                try:
                    await svc.stop()
                except Exception:
                    log.exception("service=%s stop failed", svc.name)
            await asyncio.gather(beats, announce, return_exceptions=True)
            self.heartbeat.stop_all()
            try:
                await self.heartbeat.flush()
            except Exception as exc:  # noqa: BLE001 - survive anything; logged and counted
                log.warning("could not mark the heartbeats stopped (%s: %s)", type(exc).__name__, exc)
        if self.fatal is not None:
            raise self.fatal
