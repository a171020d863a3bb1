"""Tiny shared helper: run an aiohttp app on its own thread + event loop.

The server binds 127.0.0.1 on port 0 (an ephemeral port picked by the OS);
nothing ever listens on another interface.

    server = FakeServer()
    server.add_route("GET", "/ping", handler)       # before start()
    base = server.start()                           # "http://127.0.0.1:PORT"
    ...
    server.stop()

or ``with FakeServer() as server: ...`` (routes added before ``with``, or in a
subclass ``__init__``).  Handlers are ordinary aiohttp handlers
(``async def handler(request) -> web.StreamResponse``); they run on the
server's own loop, so a client on the test's loop never deadlocks with them.

Helpers shared by every fake:

- ``json_response(data, status=200, headers=None)``: JSON body with the header
  exactly ``Content-Type: application/json`` (no charset suffix).
- ``await drop_connection(request)``: close the TCP connection without any
  answer (the client sees a disconnect / protocol error).
- ``server.call(coro_or_fn, timeout=5)``: run a coroutine (or plain callable)
  on the server loop from any thread and return its result;
  ``server.call_soon(fn, *args)`` schedules a callable there (fire and forget).
- ``FakeServer(handler_cancellation=True)``: a client that disconnects cancels
  its handler (default False: the handler runs to completion).

Optional building blocks (thread-safe):

- ``Fault(kind, status=None, retry_after=0.5, delay=1.0, message=None, extra={})``
  and ``FaultQueue``: ``push(key, fault, count=1)``, ``pop(key) -> Fault | None``
  (own key first, then ``"*"``), ``pending(key=None)``, ``clear()``.
- ``RequestLog[T]``: ``append(item)``, ``snapshot()``, ``clear()``, ``len()``,
  ``wait_for(predicate(items), timeout)`` (blocking) and
  ``await wait_for_async(predicate(items), timeout)``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Self, TypeVar

from aiohttp import web

__all__ = [
    "FakeServer",
    "Fault",
    "FaultQueue",
    "Handler",
    "RequestLog",
    "drop_connection",
    "json_response",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer with ``Content-Type`` exactly ``application/json``."""
    hdrs = {"Content-Type": "application/json"}
    if headers:
        hdrs.update(headers)
    return web.Response(body=json.dumps(data).encode("utf-8"), status=status, headers=hdrs)


async def drop_connection(request: web.Request) -> web.StreamResponse:
    """Close the connection without sending any answer.

    Use as ``return await drop_connection(request)``.  The transport is
    aborted (RST where possible) and the handler then waits to be cancelled by
    aiohttp; if it is not, a dummy response is returned which aiohttp cannot
    write anywhere.
    """
    transport = request.transport
    if transport is not None:
        transport.abort() if hasattr(transport, "abort") else transport.close()
    await asyncio.sleep(0.05)  # normally cancelled by aiohttp before this ends
    return web.Response(status=500)


@dataclass
class Fault:
    """One queued fault.  ``kind`` is fake-specific ("429", "5xx", "slow", "drop", ...)."""

    kind: str
    status: int | None = None
    retry_after: float = 0.5
    delay: float = 1.0
    message: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class FaultQueue:
    """Thread-safe FIFO of faults per key (a route / API method); key ``"*"`` matches any."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Fault]] = defaultdict(deque)

    def push(self, key: str, fault: Fault, count: int = 1) -> None:
        with self._lock:
            for _ in range(count):
                self._queues[key].append(fault)

    def pop(self, key: str) -> Fault | None:
        """The next fault for ``key`` (its own queue first, then ``"*"``), or None."""
        with self._lock:
            for k in (key, "*"):
                q = self._queues.get(k)
                if q:
                    return q.popleft()
        return None

    def pending(self, key: str | None = None) -> int:
        with self._lock:
            if key is None:
                return sum(len(q) for q in self._queues.values())
            return len(self._queues.get(key, ()))

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()


T = TypeVar("T")


class RequestLog(Generic[T]):
    """Thread-safe list of recorded requests with blocking / async waiting."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._items: list[T] = []

    def append(self, item: T) -> None:
        with self._cv:
            self._items.append(item)
            self._cv.notify_all()

    def snapshot(self) -> list[T]:
        with self._cv:
            return list(self._items)

    def clear(self) -> None:
        with self._cv:
            self._items.clear()

    def __len__(self) -> int:
        with self._cv:
            return len(self._items)

    def wait_for(self, predicate: Callable[[list[T]], Any], timeout: float = 5.0) -> Any:
        """Block until ``predicate(items)`` is truthy; return it (TimeoutError otherwise).

        Do not call from a coroutine that shares a loop with the client under
        test: use :meth:`wait_for_async` there.
        """
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                result = predicate(list(self._items))
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout}s")
                self._cv.wait(min(remaining, 0.05))

    async def wait_for_async(self, predicate: Callable[[list[T]], Any], timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = predicate(self.snapshot())
            if result:
                return result
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            await asyncio.sleep(0.01)


class FakeServer:
    """An aiohttp application served from a private thread and event loop."""

    def __init__(
        self, host: str = "127.0.0.1", name: str = "fake-server", *, handler_cancellation: bool = False
    ) -> None:
        """``handler_cancellation=True``: a client that disconnects (timeout, gives up)
        cancels its handler (long polls / slow answers stop at once); with the default
        False the handler runs to completion, like a real service applying a write."""
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("fakes only bind to loopback")
        self.host = host
        self.name = name
        self.handler_cancellation = handler_cancellation
        # client_max_size: allow multipart uploads of test documents/photos.
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.port: int | None = None
        self.base_url: str | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._stop_event: asyncio.Event | None = None
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ routes
    def add_route(self, method: str, path: str, handler: Handler) -> None:
        """Register an aiohttp route (``method`` may be ``"*"``); before start()."""
        if self._thread is not None:
            raise RuntimeError("add routes before start()")
        self.app.router.add_route(method, path, handler)

    def route(self, method: str, path: str) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add_route`."""

        def deco(fn: Handler) -> Handler:
            self.add_route(method, path, fn)
            return fn

        return deco

    # -------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 10.0) -> str:
        """Start serving; returns the base URL ``http://127.0.0.1:PORT``."""
        if self._thread is not None:
            assert self.base_url is not None
            return self.base_url
        if self._started.is_set():
            raise RuntimeError(f"{self.name}: a stopped FakeServer cannot be restarted; make a new one")
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError(f"{self.name} did not start within {timeout}s")
        if self._error is not None:
            raise RuntimeError(f"{self.name} failed to start") from self._error
        assert self.base_url is not None
        return self.base_url

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and join the thread (idempotent)."""
        thread, loop = self._thread, self.loop
        if thread is None or loop is None:
            return
        if self._stop_event is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._stop_event.set)
            except RuntimeError:  # loop already closed
                pass
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ---------------------------------------------------------------- utilities
    def call(self, fn: Any, timeout: float = 5.0) -> Any:
        """Run a coroutine or a callable on the server loop; return its result."""
        if self.loop is None:
            raise RuntimeError("server not started")
        if asyncio.iscoroutine(fn):
            return asyncio.run_coroutine_threadsafe(fn, self.loop).result(timeout)

        async def _wrap() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(_wrap(), self.loop).result(timeout)

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule a plain callable on the server loop (fire and forget)."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(fn, *args)

    # ---------------------------------------------------------------- internals
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001  # surfaced via start()
            self._error = exc
            self._started.set()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in pending:
                    t.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _serve(self) -> None:
        self._stop_event = asyncio.Event()
        runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            handler_cancellation=self.handler_cancellation,
            shutdown_timeout=0.5,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, 0)
        await site.start()
        self._runner = runner
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self.port = sock.getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.base_url = f"http://{host}:{self.port}"
        self._started.set()
        try:
            await self._stop_event.wait()
        finally:
            await runner.cleanup()


_SHARED_LOCK = threading.Lock()


class FakeLifecycle:
    """Lifecycle every fake shares: ``start() -> base_url``, ``stop()``, use as a context
    manager, ``shared()`` (one started instance per class and process, stopped at exit) and
    ``base_url``. The fake keeps its :class:`FakeServer` in ``self.server``."""

    server: FakeServer

    def start(self) -> str:
        """Start (idempotent); returns the base URL ``http://127.0.0.1:PORT``."""
        return self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @classmethod
    def shared(cls) -> Self:
        """A process-wide started instance (one per test session); call reset() per test."""
        import atexit

        with _SHARED_LOCK:
            inst = cls.__dict__.get("_shared_instance")
            if inst is None:
                inst = cls()
                inst.start()
                atexit.register(inst.stop)
                cls._shared_instance = inst  # type: ignore[attr-defined]
            return inst

    @property
    def base_url(self) -> str:
        if self.server.base_url is None:
            raise RuntimeError("fake not started")
        return self.server.base_url

