"""A TCP proxy fake that injects connection faults in front of a real server (PostgreSQL in the ledger
tests): listens on 127.0.0.1, a free port, and forwards every byte both ways to ``upstream``.

    proxy = TcpProxy("127.0.0.1", 5432)
    host, port = proxy.start()      # clients connect here instead
    proxy.refuse()                  # new connections: accepted and closed at once (the server is "down")
    proxy.cut()                     # every open connection dropped (RST), both sides
    proxy.down()                    # refuse() + cut(): an outage
    proxy.pass_through()            # new connections are forwarded again
    proxy.stop()

or ``with TcpProxy(...) as proxy: ...``. Like ``tests.fakes._server.FakeServer`` it runs on its own
thread and event loop, so a client blocking the test's thread or loop (a synchronous database
driver) never deadlocks with it; the fault switches are synchronous and have taken effect when they
return. Counters: ``accepted``, ``refused``, ``forwarded`` (connections), ``cut_count``, ``open``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, Self, TypeVar

__all__ = ["TcpProxy"]
_CHUNK = 65536
T = TypeVar("T")


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1",
                 name: str = "tcp-proxy") -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("fakes only bind to loopback")
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.name = name
        self.port: int | None = None
        self.refusing = False
        self.accepted = self.refused = self.forwarded = self.cut_count = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._pumps: set[asyncio.Task] = set()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 10.0) -> tuple[str, int]:
        """Start listening; returns (host, port) for clients."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
            if not self._started.wait(timeout):
                raise RuntimeError(f"{self.name} did not start within {timeout}s")
            if self._error is not None:
                raise RuntimeError(f"{self.name} failed to start") from self._error
        assert self.port is not None
        return self.host, self.port

    def stop(self, timeout: float = 10.0) -> None:
        """Close the listener and every connection; join the thread (idempotent)."""
        thread, loop = self._thread, self.loop
        if thread is None or loop is None or self._stop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(self._stop.set)
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ faults
    def refuse(self) -> None:
        """New connections are accepted and closed at once; open ones are left alone."""
        self._call(self._set_refusing, True)

    def pass_through(self) -> None:
        """New connections are forwarded to the upstream again."""
        self._call(self._set_refusing, False)

    def cut(self) -> int:
        """Drop every open connection now (both sides aborted); returns how many were cut."""
        return self._call(self._cut_all)

    def down(self) -> int:
        """An outage: refuse new connections and cut the open ones."""
        self.refuse()
        return self.cut()

    @property
    def open(self) -> int:
        return len(self._pairs)

    # ------------------------------------------------------------------ internals
    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the proxy's loop and wait for it (the switches take effect before returning)."""
        if self.loop is None:
            raise RuntimeError(f"{self.name} not started")

        async def run() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def _set_refusing(self, value: bool) -> None:
        self.refusing = value

    def _cut_all(self) -> int:
        pairs = list(self._pairs)
        for client, upstream in pairs:
            client.transport.abort()
            upstream.transport.abort()
        self._pairs.clear()
        self.cut_count += len(pairs)
        return len(pairs)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.refusing:
            self.refused += 1
            client_w.close()  # accepted, then closed before a byte: the client reads EOF at once
            return
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            self.refused += 1
            client_w.transport.abort()
            return
        if self.refusing:  # went down while we connected upstream
            self.refused += 1
            up_w.transport.abort()
            client_w.transport.abort()
            return
        self.forwarded += 1
        pair = (client_w, up_w)
        self._pairs.add(pair)
        pumps = [asyncio.create_task(self._pump(client_r, up_w)), asyncio.create_task(self._pump(up_r, client_w))]
        self._pumps.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in pumps:
                t.cancel()
                self._pumps.discard(t)
            self._pairs.discard(pair)
            for w in pair:
                w.transport.abort()

    @staticmethod
    async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await src.read(_CHUNK):
                dst.write(data)
                await dst.drain()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - surfaced via start()
            self._error = exc
            self._started.set()
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = server.sockets[0].getsockname()[1]
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            self._cut_all()
            await server.wait_closed()
