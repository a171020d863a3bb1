"""Secrets never reach a log line, at any level (core.runtime.logging_setup).

Fake but recognisable secrets go into the environment, ``Secrets`` loads them, logging is
configured at DEBUG through ``configure`` + ``register_secrets`` into a StringIO, then:
(a) records from third-party logger names carry the secrets in message, args, structlog
key/values and exception text; (b) the real X publisher (tweepy -> requests_oauthlib ->
oauthlib) runs against the local fake with its loggers forced to DEBUG. No secret value
may appear in the output, and every record must still be there."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import structlog

from bot.publishers.base import Payload
from bot.publishers.x_sink import XSink
from core.config.secrets import load_secrets
from core.runtime import logging_setup
from core.runtime.logging_setup import QUIET_LOGGERS, configure, register_secrets
from tests.fakes.x_api import FakeX

X_CONSUMER_KEY = "xck-SECRET-1111"
X_ACCESS_TOKEN = "xat-SECRET-2222"
TELEGRAM = "123456:SECRET-tg-3333"
ANTHROPIC = "sk-ant-SECRET-4444"
DISCORD = "SECRET-dc-5555"
REDDIT_SECRET = "SECRET-rd-6666"
X_CONSUMER_SECRET = "xcs-SECRET-7777"
X_ACCESS_SECRET = "xats-SECRET-8888"
REDIS_PASSWORD = "SECRET-redis-9999"
ENV = {
    "X_CONSUMER_KEY": X_CONSUMER_KEY,
    "X_ACCESS_TOKEN": X_ACCESS_TOKEN,
    "X_CONSUMER_SECRET": X_CONSUMER_SECRET,
    "X_ACCESS_TOKEN_SECRET": X_ACCESS_SECRET,
    "X_BEARER_TOKEN": "xbt-SECRET-1010",
    "TELEGRAM_BOT_TOKEN": TELEGRAM,
    "ANTHROPIC_API_KEY": ANTHROPIC,
    "DISCORD_BOT_TOKEN": DISCORD,
    "REDDIT_CLIENT_ID": "rid-SECRET-1212",
    "REDDIT_CLIENT_SECRET": REDDIT_SECRET,
    "REDDIT_PASSWORD": "rpw-SECRET-1313",
    "UW_API_KEY": "uw-SECRET-1414",
    "ALPHAVANTAGE_API_KEY": "av-SECRET-1515",
    "REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/15",
}
# Every fake secret carries "SECRET-": a leak of any of them (whole or in part) is caught.
LEAK_MARK = "SECRET-"
# Third-party loggers the test forces back to DEBUG (an operator turning them on).
FORCED = ("oauthlib", "requests_oauthlib", "tweepy", "urllib3", "httpx", "httpcore", "anthropic", "discord",
          "telegram", "prawcore")


@pytest.fixture
def logging_state() -> Iterator[None]:
    """Give back the root handlers, logger levels and structlog config the test changes."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    names = {*QUIET_LOGGERS, *FORCED}
    levels = {n: logging.getLogger(n).level for n in names}
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for n, lv in levels.items():
        logging.getLogger(n).setLevel(lv)
    structlog.configure(**config)
    register_secrets(None)


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch, logging_state: None) -> io.StringIO:
    """Secrets from the environment; the StringIO our configured handler will write to."""
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    return io.StringIO()


def _point_at(buf: io.StringIO) -> None:
    # configure() binds its handler to sys.stderr, which pytest's capture swaps between the
    # fixture and the call phase: redirect the very handler configure() built instead.
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buf)


def _setup(buf: io.StringIO, json_output: bool = False) -> None:
    configure("DEBUG", json_output)  # the existing two-argument call keeps working
    register_secrets(load_secrets(None))
    _point_at(buf)


def _assert_clean(out: str) -> None:
    leaks = [line for line in out.splitlines() if LEAK_MARK in line]
    assert not leaks, "secret leaked into the log:\n" + "\n".join(leaks[:10])
    for value in ENV.values():
        assert value not in out and quote(value, safe="") not in out


def _force_debug() -> None:
    for name in FORCED:
        logging.getLogger(name).setLevel(logging.DEBUG)


@pytest.mark.parametrize("json_output", [False, True], ids=["console", "json"])
def test_third_party_records_are_redacted(captured: io.StringIO, json_output: bool) -> None:
    _setup(captured, json_output)
    _force_debug()
    ours = structlog.get_logger("quanticity.test")
    lg = logging.getLogger

    lg("oauthlib.oauth1.rfc5849").debug(
        f"m01 Signature base string: POST&https%3A%2F%2Fapi.twitter.com%2F2%2Ftweets&"
        f"oauth_consumer_key%3D{X_CONSUMER_KEY}%26oauth_nonce%3D1%26oauth_token%3D{X_ACCESS_TOKEN}")
    lg("oauthlib.oauth1.rfc5849").debug(
        "m02 Signature base string: GET /2/users/me oauth_consumer_key=%s&oauth_token=%s",
        X_CONSUMER_KEY, X_ACCESS_TOKEN)
    lg("oauthlib.oauth1.rfc5849").debug("m03 Collected params: %s", [
        ("oauth_consumer_key", X_CONSUMER_KEY), ("oauth_token", X_ACCESS_TOKEN)])
    lg("requests_oauthlib.oauth1_auth").debug("m04 Updated headers: %s", {
        "Authorization": f'OAuth oauth_nonce="1", oauth_consumer_key="{X_CONSUMER_KEY}", '
                         f'oauth_token="{X_ACCESS_TOKEN}", oauth_signature="c2lnbmF0dXJl%3D"'})
    lg("httpx").info('m05 HTTP Request: %s %s "%s"', "POST",
                     f"https://api.telegram.org/bot{TELEGRAM}/getMe", "HTTP/1.1 200 OK")
    lg("anthropic._base_client").debug("m06 Request options: %s", {
        "headers": {"Authorization": f"Bearer {ANTHROPIC}", "x-api-key": ANTHROPIC}})
    lg("httpcore.http11").debug("m07 send_request_headers.started request=%r",
                                [(b"authorization", f"Bearer {ANTHROPIC}".encode())])
    lg("discord.http").debug("m08 headers Authorization: Bot %s", DISCORD)
    lg("prawcore").debug("m09 Fetching: POST https://www.reddit.com/api/v1/access_token data: %s",
                         [("grant_type", "password"), ("client_secret", REDDIT_SECRET)])
    try:
        raise RuntimeError(f"401 from https://api.telegram.org/bot{TELEGRAM}/sendMessage")
    except RuntimeError:
        lg("telegram.ext.Updater").exception("m10 polling failed")  # secret only in the exception
    try:
        raise ValueError(f"bad credentials {DISCORD} / {REDDIT_SECRET}")
    except ValueError as exc:
        lg("discord.client").error("m11 login failed: %s", exc, exc_info=True)
    lg("redis").warning("m12 reconnecting to %s", ENV["REDIS_URL"])
    lg("quanticity.core").debug("m13 our debug line %d", 42)
    lg("quanticity.core").info("m14 our info line, careless: %s", X_ACCESS_TOKEN)
    ours.info("m15 our structlog line", api_key_used=ANTHROPIC, nested={"tok": [DISCORD]})
    try:
        raise KeyError(X_CONSUMER_SECRET)
    except KeyError:
        ours.exception("m16 our structlog exception")

    out = captured.getvalue()
    _assert_clean(out)
    for i in range(1, 17):  # nothing swallowed: every record made it to the output
        assert f"m{i:02d}" in out, f"record m{i:02d} missing:\n{out}"
    assert "our debug line 42" in out and "our structlog line" in out
    assert "Traceback" in out and "RuntimeError" in out and "KeyError" in out
    assert "/bot***/getMe" in out and "***" in out


def test_noisy_third_party_loggers_stay_at_warning(captured: io.StringIO) -> None:
    _setup(captured)
    assert logging.getLogger().level == logging.DEBUG
    for name in (*QUIET_LOGGERS, "oauthlib.oauth1.rfc5849", "httpcore.http11", "discord.http",
                 "anthropic._base_client", "ib_async.client", "telegram.ext"):
        assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING, name
    logging.getLogger("oauthlib.oauth1.rfc5849").debug("should not appear")
    logging.getLogger("quanticity").debug("ours at debug")
    out = captured.getvalue()
    assert "should not appear" not in out and "ours at debug" in out


async def test_real_x_client_at_debug_is_redacted(captured: io.StringIO) -> None:
    _setup(captured)
    secrets = load_secrets(None)
    assert secrets.x_consumer_key is not None and secrets.x_access_token is not None
    raw = io.StringIO()  # control: an unredacted handler proves the secrets really were logged
    raw_handler = logging.StreamHandler(raw)
    raw_handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    with FakeX() as fake:
        sink = XSink(consumer_key=secrets.x_consumer_key.get_secret_value(),
                     consumer_secret=secrets.x_consumer_secret.get_secret_value(),  # type: ignore[union-attr]
                     access_token=secrets.x_access_token.get_secret_value(),
                     access_token_secret=secrets.x_access_token_secret.get_secret_value(),  # type: ignore[union-attr]
                     api_base=fake.base_url)
        try:
            await sink.post("timeline", "quiet", idempotency_key="aa" * 16)
            assert "oauthlib" not in captured.getvalue()  # quiet by default: nothing from the signer

            _force_debug()
            logging.getLogger().handlers.insert(0, raw_handler)  # runs before our filter
            logging.getLogger("quanticity.x").info("posting at debug")
            first = await sink.post("timeline", "loud", idempotency_key="bb" * 16)
            found = await sink.find_existing("bb" * 16, expected=Payload("loud"))
            assert found is not None and found.message_id == first.message_id
        finally:
            logging.getLogger().removeHandler(raw_handler)
            await sink.close()
        auth = fake.requests("create_tweet")[-1].headers["Authorization"]
        assert X_CONSUMER_KEY in auth and X_ACCESS_TOKEN in auth  # the real secrets went on the wire

    control = raw.getvalue()
    assert X_CONSUMER_KEY in control and X_ACCESS_TOKEN in control, "oauthlib did not log: test is vacuous"
    out = captured.getvalue()
    assert out.count("oauthlib") >= 5 and "requests_oauthlib" in out  # real signing logs went through
    assert "posting at debug" in out
    _assert_clean(out)


def test_configure_accepts_secrets_and_filter_never_drops(captured: io.StringIO) -> None:
    configure("DEBUG", False, secrets=load_secrets(None))
    _point_at(captured)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler.formatter, logging_setup.RedactingFormatter)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "a %s %s", (X_ACCESS_TOKEN,), None)  # bad args
    assert logging_setup.SecretRedactionFilter().filter(record) is True
    logging.getLogger("quanticity").info("token %s", DISCORD)
    out = captured.getvalue()
    assert "token ***" in out
    _assert_clean(out)
    assert logging_setup.redact(f"oauth_signature={X_ACCESS_TOKEN}&x=1") == "oauth_signature=***&x=1"
