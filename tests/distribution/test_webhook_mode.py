"""Discord webhook mode (simpler setup): one webhook per tier, no threads."""

from __future__ import annotations

from bot.distribution import DistributorService
from bot.publishers.discord_sink import DiscordWebhookSink
from tests.distribution._util import CHANNELS, Harness, deliveries, position
from tests.helpers import make_context


async def test_webhook_mode_posts_every_tier_without_threads(bus, dfake, tmp_path):
    urls = {tier: dfake.add_webhook(1500000000000000000 + i, channel_id=cid)
            for i, (tier, cid) in enumerate(CHANNELS.items())}
    sink = DiscordWebhookSink(urls, api_base=dfake.base_url)
    ctx = make_context(bus, out_dir=str(tmp_path), distribution={"sink": "live", "channels": ["discord"]})
    svc = DistributorService(ctx, sinks={"discord": sink})
    await svc.start()
    try:
        h = Harness(svc, bus)
        await h.publish(position(bus, "entry"))
        await h.advance(30)
        await h.publish(position(bus, "stop_moved"))
        await h.advance(400)
    finally:
        await svc.stop()
    prem = dfake.messages(CHANNELS["premium"])
    assert len(prem) == 2 and prem[0]["embeds"][0]["title"].startswith("🟢 ENTRY")
    assert prem[1]["embeds"][0]["title"].startswith("🔁 STOP MOVED") and prem[1]["webhook_id"]
    assert len(dfake.messages(CHANNELS["basic"])) == 2 and len(dfake.messages(CHANNELS["free"])) == 1
    assert dfake.threads() == []
    assert all(d.reply_to is None for d in await deliveries(bus, "delivered"))
