"""Secrets never logged at any level, checked on the real thing: ``main.py run --mode demo`` with
EVERY service (the Telegram admin bot and the overseer's model review included, against the local
Telegram and Anthropic fakes), logging at DEBUG, every secret set to a recognisable fake value
(the Redis URL with a password, the bot token that is part of every Bot API URL path, the
Anthropic key, the X / Reddit / Discord keys). All of stdout and stderr is grepped.

A control proves the run really used the secrets: the Telegram fake saw requests under the token
and the Anthropic fake saw the key, so a clean output means redacted, not unused.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegram

ROOT = Path(__file__).resolve().parents[2]
ADMIN = 424242
SECRETS = {
    "REDIS_URL": "redis://default:pw-REDIS-s3cret-4417@127.0.0.1:6379/15",
    "TELEGRAM_BOT_TOKEN": DEFAULT_TOKEN,
    "ANTHROPIC_API_KEY": "sk-ant-FAKE-s3cret-ab12cd34ef56",
    "DISCORD_BOT_TOKEN": "discord-FAKE-s3cret-token-9931",
    "X_BEARER_TOKEN": "x-bearer-FAKE-s3cret-5521",
    "X_CONSUMER_KEY": "x-ckey-FAKE-s3cret-1177",
    "X_CONSUMER_SECRET": "x-csecret-FAKE-s3cret-2288",
    "X_ACCESS_TOKEN": "x-atoken-FAKE-s3cret-3399",
    "X_ACCESS_TOKEN_SECRET": "x-asecret-FAKE-s3cret-4400",
    "REDDIT_CLIENT_ID": "reddit-id-FAKE-s3cret-6611",
    "REDDIT_CLIENT_SECRET": "reddit-secret-FAKE-s3cret-7722",
    "REDDIT_PASSWORD": "reddit-pw-FAKE-s3cret-8833",
    "UW_API_KEY": "uw-FAKE-s3cret-9944",
}
SERVICES = "market,analytics,signals,overseer,approvals,execution,positions,anomaly,reports,distributor,telegram"


def _needles() -> list[str]:
    out = []
    for name, value in SECRETS.items():
        out.append(value.split(":pw-")[1].split("@")[0] if name == "REDIS_URL" else value)
    out.append(DEFAULT_TOKEN.split(":", 1)[1])  # the token's secret half alone
    return out


@pytest.mark.timeout(150)
def test_every_service_at_debug_logs_no_secret(tmp_path: Path) -> None:
    anthropic = FakeAnthropic(api_key=SECRETS["ANTHROPIC_API_KEY"])
    telegram = FakeTelegram()
    a_url, t_url = anthropic.start(), telegram.start()
    prefix = f"sec{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **SECRETS,
           "ANTHROPIC_BASE_URL": a_url, "TELEGRAM_API_BASE": t_url,
           "TELEGRAM_ADMIN_IDS": str(ADMIN), "TELEGRAM_ADMIN_CHAT_ID": str(ADMIN),
           "QUANT_TELEGRAM__ENABLED": "true", "QUANT_LOGGING__LEVEL": "DEBUG",
           "QUANT_METRICS__ENABLED": "false", "QUANT_REDIS__KEY_PREFIX": prefix,
           "QUANT_DEMO__OUT_DIR": str(tmp_path / "out"), "NO_PROXY": "127.0.0.1,localhost"}
    log = tmp_path / "run.log"
    try:
        with log.open("wb") as fh:
            proc = subprocess.Popen([sys.executable, "main.py", "run", "--mode", "demo", "--speed", "60",
                                     "--services", SERVICES], cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 90
            # until the run has talked to both upstreams under the secrets (the control), then a while more
            while time.monotonic() < deadline and proc.poll() is None:
                if telegram.requests("getMe") and anthropic.requests():
                    time.sleep(5)
                    break
                time.sleep(0.5)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    finally:
        anthropic.stop()
        telegram.stop()
        _wipe(prefix)
    out = log.read_text(errors="replace")
    assert telegram.requests("getMe"), f"the bot never reached the Telegram fake:\n{out[-3000:]}"
    assert anthropic.requests(), f"the overseer never called the model:\n{out[-3000:]}"
    assert out.lower().count("[debug") > 20, "the run did not log at DEBUG"
    leaks = [n for n in _needles() if n in out]
    assert not leaks, f"secrets in the output: {leaks}"


def _wipe(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/15")
    for key in client.scan_iter(match=f"{prefix}.*", count=1000):
        client.delete(key)
    client.close()
