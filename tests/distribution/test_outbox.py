"""The local outbox (demo / dry-run): exact keys, threading, determinism, crash safety,
and its HTML rendering; plus the live runner's immediate premium delivery."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import redis.asyncio as aioredis

from bot.distribution import DistributorService, render_outbox_html
from bot.publishers import OUTBOX_KEYS
from core.bus.bus import Bus
from core.bus.ids import IdFactory
from core.bus.keys import Keys
from core.clock.clock import LiveClock, SimClock
from core.runtime.live_runner import LiveRunner
from tests.distribution._util import CHANNELS, Harness, deliveries, position
from tests.helpers import make_context

START = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)


async def run_trade_into_outbox(bus: Bus, out_dir: Path) -> Path:
    ctx = make_context(bus, out_dir=str(out_dir), distribution={"sink": "outbox"})
    svc = DistributorService(ctx)
    await svc.start()
    h = Harness(svc, bus)
    try:
        await h.publish(position(bus, "entry"))
        await h.advance(45)
        await h.publish(position(bus, "stop_moved"))
        await h.advance(45)
        await h.publish(position(bus, "partial_exit"))
        await h.advance(45)
        await h.publish(position(bus, "closed"))
        await h.advance(400)
    finally:
        await svc.stop()
    return out_dir / "outbox.jsonl"


async def test_outbox_lines_have_exactly_the_keys_and_thread(bus, tmp_path):
    path = await run_trade_into_outbox(bus, tmp_path)
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert lines and all(tuple(rec) == OUTBOX_KEYS for rec in lines)
    assert OUTBOX_KEYS[:8] == ("channel", "tier", "ts", "correlation_id", "message_id", "reply_to", "event", "text")
    assert {"embed", "title"} <= set(OUTBOX_KEYS)
    assert all(isinstance(r["embed"], dict) == (r["tier"] == "premium") for r in lines)  # premium = embeds
    assert all(bool(r["title"]) == (r["channel"] == "reddit" and not r["reply_to"]) for r in lines)
    assert {(r["channel"], r["tier"]) for r in lines} == {("discord", "premium"), ("discord", "basic"),
                                                          ("discord", "free"), ("x", "free"), ("reddit", "free")}
    assert len(lines) == 4 + 4 + 2 + 2 + 2
    for r in lines:
        ts = datetime.fromisoformat(r["ts"])
        assert ts.utcoffset().total_seconds() == -5 * 3600  # America/New_York (EST in November)
        assert r["event"] in ("entry", "stop_moved", "partial_exit", "closed", "report")
        assert r["correlation_id"] == "trade-1"
    first = datetime.fromisoformat(lines[0]["ts"])
    assert first == START and lines[0]["tier"] == "premium" and lines[0]["reply_to"] is None
    by = {(r["channel"], r["tier"], r["event"]): r for r in lines}
    basic_entry = by[("discord", "basic", "entry")]
    assert (datetime.fromisoformat(basic_entry["ts"]) - START).total_seconds() == 60
    assert (datetime.fromisoformat(by[("x", "free", "entry")]["ts"]) - START).total_seconds() == 300
    for tier in ("premium", "basic"):
        root = by[("discord", tier, "entry")]["message_id"]
        for kind in ("stop_moved", "partial_exit", "closed"):
            assert by[("discord", tier, kind)]["reply_to"] == root
    assert by[("x", "free", "closed")]["reply_to"] == by[("x", "free", "entry")]["message_id"]
    assert by[("reddit", "free", "closed")]["reply_to"] == by[("reddit", "free", "entry")]["message_id"]
    assert "Not investment advice" in by[("x", "free", "entry")]["text"]


async def test_same_seed_gives_a_byte_identical_outbox(redis_client, tmp_path):
    outs = []
    for run in range(2):
        keys = Keys(f"t{uuid.uuid4().hex[:10]}")
        bus = Bus(redis_client, keys, SimClock(START), IdFactory(seed=7))
        try:
            outs.append((await run_trade_into_outbox(bus, tmp_path / f"run{run}")).read_bytes())
        finally:
            async for key in redis_client.scan_iter(match=keys.pattern(), count=1000):
                await redis_client.delete(key)
    assert outs[0] == outs[1] and len(outs[0]) > 1000


async def test_outbox_crash_between_write_and_record_writes_once(bus, tmp_path):
    class Crash(BaseException):
        pass

    ctx = make_context(bus, out_dir=str(tmp_path), distribution={"sink": "outbox", "inflight_lease_s": 10})
    svc = DistributorService(ctx)
    await svc.start()

    async def dying(*a, **k):
        raise Crash

    svc.outcomes.delivered = dying
    h = Harness(svc, bus)
    await h.publish(position(bus, "entry"))
    try:
        await h.run_due()
    except Crash:
        pass
    # a torn half line from the dying process must not corrupt the file
    with (tmp_path / "outbox.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"channel": "disc')
    svc2 = DistributorService(ctx)
    await svc2.start()
    await Harness(svc2, bus).advance(400)
    lines = [json.loads(x) for x in (tmp_path / "outbox.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sum(r["tier"] == "premium" for r in lines) == 1 and len(lines) == 5


class _Tree(HTMLParser):
    """Records, for every message div, the message it answers (``data-reply-to``, with a link to it)
    and its column; flags anything that would load from outside."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.parent: dict[str, str | None] = {}
        self.links: dict[str, str] = {}
        self.column: dict[str, str] = {}
        self.headers: list[str] = []
        self._in_th = False
        self._cell = -1
        self.bad: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "link", "img", "iframe") or "src" in a or (
                "href" in a and not (tag == "a" and str(a["href"]).startswith("#"))):
            self.bad.append(tag)
        if tag == "th":
            self.headers.append("")
            self._in_th = True
        if tag == "tr":
            self._cell = -1
        if tag == "td":
            self._cell += 1
        if tag == "a" and self.stack:
            self.links[self.stack[-1]] = str(a.get("href", ""))[3:]
        ident = a.get("id") if tag == "div" else None
        if ident and ident.startswith("m-"):
            self.parent[ident[2:]] = a.get("data-reply-to")
            self.column[ident[2:]] = self.headers[self._cell]
            self.stack.append(ident[2:])

    def handle_endtag(self, tag):
        if tag == "th":
            self._in_th = False
        if tag == "td":
            self.stack.clear()

    def handle_data(self, data):
        if self._in_th:
            self.headers[-1] += data


async def test_outbox_html_links_replies_to_their_parent(bus, tmp_path):
    path = await run_trade_into_outbox(bus, tmp_path)
    html_path = render_outbox_html(path, tmp_path / "outbox.html")
    page = Path(html_path).read_text(encoding="utf-8")
    tree = _Tree()
    tree.feed(page)
    assert tree.bad == [] and "<style>" in page and "http" not in page.split("<body>")[0].replace(
        "http-equiv", "")
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert set(tree.parent) == {r["message_id"] for r in lines}
    for r in lines:
        assert tree.parent[r["message_id"]] == r["reply_to"]  # answers exactly its parent...
        if r["reply_to"]:
            assert tree.links[r["message_id"]] == r["reply_to"]  # ...and links to it
    cols = {tree.column[r["message_id"]].rstrip("0123456789") for r in lines}
    assert cols == {"Discord · premium", "Discord · basic", "Discord · free", "X", "Reddit"}
    assert page.count('class="msg ') == len(lines)


async def test_outbox_html_escapes_text(tmp_path):
    src = tmp_path / "o.jsonl"
    rec = {"channel": "discord", "tier": "basic", "ts": "2026-11-20T09:30:00.000-05:00", "correlation_id": "c",
           "message_id": "m1", "reply_to": None, "event": "entry", "text": "<script>alert(1)</script> & co"}
    src.write_text(json.dumps(rec) + "\n", encoding="utf-8")
    page = Path(render_outbox_html(src, tmp_path / "o.html")).read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page


async def test_live_runner_sends_premium_right_after_the_fill(redis_url, live_secrets, dfake, xfake, rfake):
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(f"t{uuid.uuid4().hex[:10]}")
    bus = Bus(client, keys, LiveClock(), IdFactory())
    ctx = make_context(bus, secrets=live_secrets, distribution={
        "sink": "live", "channels": ["discord"],
        "tiers": {"premium": {"delay_s": 0}, "basic": {"delay_s": 1}, "free": {"delay_s": 2}}})
    svc = DistributorService(ctx)
    runner = LiveRunner([svc], poll_block_ms=200)
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.sleep(0.3)
        ev = position(bus, "entry")
        await bus.publish(ev)
        await dfake_wait(dfake, CHANNELS["premium"], 1, timeout=2.0)
        premium_at = datetime.now(UTC).timestamp() * 1000
        assert premium_at - ev.ts < 1000  # not held until a timer poll
        await dfake_wait(dfake, CHANNELS["free"], 1, timeout=5.0)
        for _ in range(200):
            got = {d.tier: d for d in await deliveries(bus, "delivered")}
            if len(got) == 3:
                break
            await asyncio.sleep(0.01)
        assert got["basic"].ts - ev.ts >= 1000 and got["free"].ts - ev.ts >= 2000
    finally:
        runner.request_stop()
        await task
        async for key in client.scan_iter(match=keys.pattern(), count=1000):
            await client.delete(key)
        await client.aclose()


async def dfake_wait(dfake, channel_id: int, n: int, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while len(dfake.messages(channel_id)) < n:
        assert loop.time() < end, f"channel {channel_id} did not get {n} message(s) in {timeout}s"
        await asyncio.sleep(0.005)
