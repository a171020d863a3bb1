"""A small Chrome DevTools Protocol client for the browser check: headless Chromium driven over its
debugging websocket with aiohttp (already a dev dependency), no browser download, no extra package.

Why raw CDP rather than Playwright or Selenium: the check needs six things (open a file at a given
width, wait, evaluate JavaScript, collect console errors and requests, take a screenshot), which are
a handful of protocol calls; Playwright would add a ~40 MB package with its own Node driver and
Selenium a chromedriver whose version must match the browser's. Here the browser is the system's
(Debian's ``chromium``) and the protocol is the browser's own.

The browser is fenced in: every host name resolves to nothing (``--host-resolver-rules``), there is
no proxy, and the background services that phone home are off, so nothing leaves 127.0.0.1 even when
a page tries to load something from the internet (the page records it as a request and an error).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import aiohttp

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-domain-reliability", "--no-pings",
    "--metrics-recording-only", "--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND",
    "--hide-scrollbars", "--mute-audio", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
)
LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


def find_chromium() -> str | None:
    """``$QUANTICITY_CHROMIUM``, else the first Chromium-family browser on PATH."""
    env = os.environ.get("QUANTICITY_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class CdpError(RuntimeError):
    pass


@dataclass
class PageLog:
    """What a page did while it was open."""

    errors: list[str] = field(default_factory=list)  # console errors, uncaught exceptions, failed loads
    requests: list[str] = field(default_factory=list)  # every URL the page asked for


class Browser:
    """One headless Chromium; use as ``async with Browser(exe) as b: page = await b.open(path, 1280)``."""

    def __init__(self, exe: str, timeout_s: float = 30.0) -> None:
        self.exe, self.timeout_s = exe, timeout_s
        self._proc: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._next = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._listeners: list[tuple[str | None, asyncio.Queue[dict[str, Any]]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stderr: list[str] = []
        self._profile = tempfile.TemporaryDirectory(prefix="browser-profile-")

    async def __aenter__(self) -> Self:
        self._proc = await asyncio.create_subprocess_exec(
            self.exe, *FLAGS, f"--user-data-dir={self._profile.name}", "about:blank",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        url = await asyncio.wait_for(self._devtools_url(), self.timeout_s)
        self._tasks.append(asyncio.create_task(self._drain_stderr()))
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(url, max_msg_size=0)
        self._tasks.append(asyncio.create_task(self._read()))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for t in self._tasks:
            t.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            try:
                await asyncio.wait_for(self._proc.wait(), 10)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        self._profile.cleanup()

    async def _devtools_url(self) -> str:
        assert self._proc is not None and self._proc.stderr is not None
        while True:
            line = (await self._proc.stderr.readline()).decode("utf-8", "replace")
            if not line:
                raise CdpError(f"chromium exited before listening: {''.join(self._stderr)[-2000:]}")
            self._stderr.append(line)
            m = LISTENING.search(line)
            if m:
                return m.group(1)

    async def _drain_stderr(self) -> None:  # a full pipe would stall the browser
        assert self._proc is not None and self._proc.stderr is not None
        while line := await self._proc.stderr.readline():
            self._stderr.append(line.decode("utf-8", "replace"))

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            data = msg.json()
            if "id" in data:
                fut = self._pending.pop(data["id"], None)
                if fut is not None and not fut.done():
                    fut.set_result(data)
                continue
            for session, queue in self._listeners:
                if session is None or session == data.get("sessionId"):
                    queue.put_nowait(data)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(CdpError("the browser closed the connection"))

    async def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        assert self._ws is not None
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next] = fut
        await self._ws.send_json(msg)
        reply = await asyncio.wait_for(fut, self.timeout_s)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def listen(self, session: str | None) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._listeners.append((session, queue))
        return queue

    async def open(self, path: Path, width: int, height: int = 900) -> Page:
        """A new tab showing ``path`` at ``width`` CSS px, after its load event."""
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(self, attached["sessionId"])
        await page.start(width, height)
        await page.navigate(path.resolve().as_uri())
        return page


class Page:
    def __init__(self, browser: Browser, session: str) -> None:
        self.browser, self.session = browser, session
        self.log = PageLog()
        self._events = browser.listen(session)
        self._loaded = asyncio.Event()
        self._collector: asyncio.Task[None] | None = None
        self._urls: dict[str, str] = {}  # request id -> URL

    async def send(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return await self.browser.send(method, params, self.session)

    async def start(self, width: int, height: int) -> None:
        self._collector = asyncio.create_task(self._collect())
        self.browser._tasks.append(self._collector)
        for domain in ("Page", "Runtime", "Log", "Network"):
            await self.send(f"{domain}.enable")
        await self.send("Emulation.setDeviceMetricsOverride",
                        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    async def _collect(self) -> None:
        while True:
            ev = await self._events.get()
            method, p = ev.get("method"), ev.get("params", {})
            if method == "Page.loadEventFired":
                self._loaded.set()
            elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                self.log.errors.append("console: " + " ".join(str(a.get("value", a.get("description", "")))
                                                              for a in p.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                self.log.errors.append("exception: " + str(d.get("exception", {}).get("description", d.get("text"))))
            elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                e = p["entry"]
                self.log.errors.append(f"{e.get('source')}: {e.get('text')} {e.get('url', '')}".strip())
            elif method == "Network.requestWillBeSent":
                self._urls[p.get("requestId", "")] = url = p.get("request", {}).get("url", "")
                self.log.requests.append(url)
            elif method == "Network.loadingFailed":
                url = self._urls.get(p.get("requestId", ""), "?")
                self.log.errors.append(f"load failed: {p.get('errorText')} {url[:120]}")

    async def navigate(self, url: str) -> None:
        self._loaded.clear()
        reply = await self.send("Page.navigate", {"url": url})
        if reply.get("errorText"):
            raise CdpError(f"navigate {url}: {reply['errorText']}")
        await asyncio.wait_for(self._loaded.wait(), self.browser.timeout_s)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (awaited when it is a promise)."""
        reply = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                     "awaitPromise": True})
        if "exceptionDetails" in reply:
            d = reply["exceptionDetails"]
            raise CdpError(f"evaluate: {d.get('text')} {d.get('exception', {}).get('description', '')}".strip())
        return reply["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float = 15.0) -> bool:
        """Poll until ``expression`` is truthy; False on timeout."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while loop.time() < end:
            if await self.evaluate(expression):
                return True
            await asyncio.sleep(0.05)
        return False

    async def screenshot(self, path: Path) -> Path:
        """The whole page (not only the viewport) as a PNG."""
        size = await self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        shot = await self.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    async def close(self) -> None:
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector
        with contextlib.suppress(CdpError, TimeoutError):
            await self.browser.send("Target.closeTarget", {"targetId": await self._target_id()})

    async def _target_id(self) -> str:
        info = await self.send("Target.getTargetInfo")
        return str(info["targetInfo"]["targetId"])
