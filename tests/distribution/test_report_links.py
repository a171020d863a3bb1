"""Report posts say where the page can be opened (issue 11).

Discord posts carry the tier's HTML page as a multipart attachment (``files[0]``, checked at
the fake Discord through discord.py, bot and webhook mode); a page over the size limit goes out
without it and the text says so (logged and counted). With a public base URL every post links
``<base>/<file>``; without one the X / Reddit teasers say where the page is (configurable
wording), and no post names a bare file. The outbox records the attachment path.
"""

from __future__ import annotations

import json
from pathlib import Path

from bot.distribution import DistributorService
from bot.distribution.render import ROUTES, Renderer
from bot.publishers.base import ATTACHMENTS_SKIPPED
from bot.publishers.discord_sink import DiscordWebhookSink
from core.bus.events import ReportEvent
from tests.distribution._util import CHANNELS, SUBREDDIT, Harness, deliveries
from tests.helpers import make_context

PAGE = "<html><body>close report</body></html>"


def write_pages(folder: Path, sizes: dict[str, int] | None = None) -> dict[str, str]:
    paths = {}
    for tier in ("premium", "basic", "free"):
        p = folder / f"2026-12-03-close-{tier}.html"
        n = (sizes or {}).get(tier)
        p.write_text(PAGE if n is None else "x" * n)
        paths[tier] = str(p)
    return paths


def report(bus, paths: dict[str, str]) -> ReportEvent:
    return bus.make(ReportEvent, correlation_id="rep-close-1", kind="close", status="approved",
                    report_id="rep-close-1", summary="SPX pinned 5900", path=paths["premium"], paths=paths)


def skipped(reason: str) -> float:
    return ATTACHMENTS_SKIPPED.labels("discord", reason)._value.get()


async def test_discord_posts_carry_their_page_and_public_teasers_say_where(bus, make_service, live_secrets, dfake,
                                                                           xfake, rfake, tmp_path):
    paths = write_pages(tmp_path)
    h = await make_service(live_secrets, subreddit=SUBREDDIT, report_where="in #reports on our Discord")
    await h.publish(report(bus, paths))
    await h.advance(400)
    sends = dfake.requests("send_message")
    assert len(sends) == 3
    for tier, cid in CHANNELS.items():
        (msg,) = dfake.messages(cid)
        assert [a["filename"] for a in msg["attachments"]] == [f"2026-12-03-close-{tier}.html"]
        req = next(r for r in sends if r.path.endswith(f"/channels/{cid}/messages"))
        assert req.headers["Content-Type"].startswith("multipart/form-data")
        assert [(f["field"], f["data"]) for f in req.files] == [("files[0]", PAGE.encode())]
        shown = msg["content"] + json.dumps(msg["embeds"], ensure_ascii=False)
        assert "attached" in shown and ".html" not in shown
    (tweet,) = xfake.tweets()
    assert "in #reports on our Discord" in tweet["text"] and ".html" not in tweet["text"]
    (sub,) = rfake.submissions(SUBREDDIT)
    assert "in \\#reports on our Discord" in sub["selftext"] and ".html" not in sub["selftext"]
    assert len(await deliveries(bus, "delivered")) == 5


async def test_a_public_base_url_gives_every_post_a_full_link(bus, make_service, live_secrets, dfake, xfake, rfake,
                                                              tmp_path):
    paths = write_pages(tmp_path)
    h = await make_service(live_secrets, subreddit=SUBREDDIT, report_base_url="https://reports.example.test/d/")
    await h.publish(report(bus, paths))
    await h.advance(400)
    (tweet,) = xfake.tweets()
    assert "https://reports.example.test/d/2026-12-03-close-free.html" in tweet["text"]
    (sub,) = rfake.submissions(SUBREDDIT)
    assert "https://reports.example.test/d/2026-12-03-close-free.html" in sub["selftext"]
    (basic,) = dfake.messages(CHANNELS["basic"])
    assert "https://reports.example.test/d/2026-12-03-close-basic.html" in basic["content"]
    assert basic["attachments"][0]["filename"] == "2026-12-03-close-basic.html"


async def test_a_page_over_the_limit_goes_out_without_it_and_the_post_says_so(bus, make_service, live_secrets,
                                                                              dfake, xfake, rfake, tmp_path):
    paths = write_pages(tmp_path, {"basic": 5000})
    before = skipped("too_large")
    h = await make_service(live_secrets, channels=["discord"], report_attach_max_bytes=4096)
    await h.publish(report(bus, paths))
    await h.advance(400)
    (basic,) = dfake.messages(CHANNELS["basic"])
    assert basic["attachments"] == [] and "too large" in basic["content"]
    (free,) = dfake.messages(CHANNELS["free"])
    assert [a["filename"] for a in free["attachments"]] == ["2026-12-03-close-free.html"]
    assert skipped("too_large") == before + 1
    assert len(await deliveries(bus, "delivered")) == 3


async def test_the_fake_refuses_what_discord_refuses(bus, dfake, tmp_path):
    """The limit exists for a reason: over 10 MiB Discord answers 413 (the fake too)."""
    big = tmp_path / "big.html"
    big.write_bytes(b"x" * (dfake.max_file_bytes + 1))
    from bot.publishers.base import PublishError
    from bot.publishers.discord_sink import DiscordSink

    sink = DiscordSink("tok", {t: str(c) for t, c in CHANNELS.items()}, api_base=dfake.base_url)
    try:
        err = None
        try:
            await sink.post(str(CHANNELS["free"]), "page", idempotency_key="ab" * 12, attachment=str(big))
        except PublishError as exc:
            err = exc
        assert err is not None and "413" in str(err) and dfake.messages(CHANNELS["free"]) == []
    finally:
        await sink.close()


async def test_webhook_mode_attaches_the_page(bus, dfake, tmp_path):
    paths = write_pages(tmp_path)
    urls = {tier: dfake.add_webhook(1500000000000000000 + i, channel_id=cid)
            for i, (tier, cid) in enumerate(CHANNELS.items())}
    ctx = make_context(bus, out_dir=str(tmp_path), distribution={"sink": "live", "channels": ["discord"]})
    svc = DistributorService(ctx, sinks={"discord": DiscordWebhookSink(urls, api_base=dfake.base_url)})
    await svc.start()
    try:
        h = Harness(svc, bus)
        await h.publish(report(bus, paths))
        await h.advance(400)
    finally:
        await svc.stop()
    for tier, cid in CHANNELS.items():
        (msg,) = dfake.messages(cid)
        assert [a["filename"] for a in msg["attachments"]] == [f"2026-12-03-close-{tier}.html"]
    assert all(r.files for r in dfake.requests("execute_webhook"))


async def test_outbox_records_the_attachment_path(bus, make_service, tmp_path):
    paths = write_pages(tmp_path)
    h = await make_service(sink="outbox", out_dir=str(tmp_path))
    await h.publish(report(bus, paths))
    await h.advance(400)
    lines = [json.loads(x) for x in (tmp_path / "outbox.jsonl").read_text().splitlines()]
    assert len(lines) == len(ROUTES["report"])
    by = {(r["channel"], r["tier"]): r for r in lines}
    for tier in ("premium", "basic", "free"):
        assert by[("discord", tier)]["attachment"] == paths[tier]
    assert "attachment" not in by[("x", "free")] and "attachment" not in by[("reddit", "free")]


def test_no_post_names_a_bare_file(tmp_path):
    """Missing page (not attachable) and no URL: Discord says it could not be attached; never a file name."""
    paths = {t: str(tmp_path / f"gone-{t}.html") for t in ("premium", "basic", "free")}
    ev = ReportEvent(id="01JREPORT", ts=1_764_768_600_000, correlation_id="r", kind="close", status="approved",
                     path=paths["premium"], paths=paths, report_id="r", summary="s")
    before = skipped("missing")
    for channel, tier in ROUTES["report"]:
        r = Renderer().report(ev, channel, tier, "k" * 24)
        assert r is not None and r.attachment is None and ".html" not in r.text, (channel, tier, r.text)
        if channel == "discord":
            assert "could not be attached" in r.text
    assert skipped("missing") == before + 3
