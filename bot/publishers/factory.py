"""Builds the sink of each channel from settings and secrets.

``settings.distribution.sink``:

- ``outbox``: every channel (Discord per tier, X free, Reddit free) goes to the one
  local :class:`OutboxSink` (``<out_dir>/outbox.jsonl``), so the demo shows everything.
- ``live``: Discord (bot, or webhooks with ``discord_mode: webhook``), X and Reddit,
  each only if its credentials are set; a channel without credentials is skipped
  with one warning (never an exception text with a secret in it).
"""

from __future__ import annotations

import logging
from pathlib import Path

from bot.publishers.base import CHANNELS, Sink
from bot.publishers.outbox import OutboxSink
from core.clock.clock import Clock
from core.config.model import Settings
from core.config.secrets import Secrets

log = logging.getLogger("quanticity.publishers")


def _secret(value: object) -> str:
    if value is None:
        return ""
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if getter else value)


def build_sinks(settings: Settings, secrets: Secrets, clock: Clock, out_dir: str | None) -> dict[str, Sink]:
    d = settings.distribution
    channels = [c for c in dict.fromkeys(d.channels) if c in CHANNELS]
    if d.sink == "outbox":
        outbox = OutboxSink(Path(out_dir or settings.demo.out_dir), clock)
        return {c: outbox for c in channels}
    sinks: dict[str, Sink] = {}
    if "discord" in channels:
        if d.discord_mode == "webhook":
            from bot.publishers.discord_sink import DiscordWebhookSink

            urls = {t: _secret(getattr(secrets, f"discord_webhook_{t}", None)) for t in ("premium", "basic", "free")}
            if any(urls.values()):
                sinks["discord"] = DiscordWebhookSink(urls, api_base=secrets.discord_api_base)
            else:
                log.warning("discord webhook mode but no DISCORD_WEBHOOK_<TIER> set: discord skipped")
        else:
            token = _secret(secrets.discord_bot_token)
            ids = {"premium": secrets.discord_channel_premium, "basic": secrets.discord_channel_basic,
                   "free": secrets.discord_channel_free}
            if token and any(ids.values()):
                from bot.publishers.discord_sink import DiscordSink

                sinks["discord"] = DiscordSink(token, ids, api_base=secrets.discord_api_base,
                                               scan_limit=d.reconcile_scan_limit)
            else:
                log.warning("DISCORD_BOT_TOKEN or DISCORD_CHANNEL_<TIER> not set: discord skipped")
    if "x" in channels:
        creds = {k: _secret(getattr(secrets, f"x_{k}")) for k in
                 ("consumer_key", "consumer_secret", "access_token", "access_token_secret")}
        if all(creds.values()):
            from bot.publishers.x_sink import XSink

            sinks["x"] = XSink(**creds, api_base=secrets.x_api_base, timeout_s=d.post_timeout_s,
                               scan_limit=d.reconcile_scan_limit)
        else:
            log.warning("X_CONSUMER_KEY/SECRET or X_ACCESS_TOKEN/SECRET not set: x skipped")
    if "reddit" in channels:
        cid, csec = _secret(secrets.reddit_client_id), _secret(secrets.reddit_client_secret)
        user, pw = secrets.reddit_username or "", _secret(secrets.reddit_password)
        if cid and csec and user and pw:
            from bot.publishers.reddit_sink import RedditSink

            sinks["reddit"] = RedditSink(client_id=cid, client_secret=csec, username=user, password=pw,
                                         subreddit=d.subreddit, api_base=secrets.reddit_api_base,
                                         timeout_s=d.post_timeout_s, scan_limit=d.reconcile_scan_limit)
        else:
            log.warning("REDDIT_CLIENT_ID/SECRET/USERNAME/PASSWORD not set: reddit skipped")
    return sinks
