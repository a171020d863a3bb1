"""Structured logging (structlog over stdlib logging), text or JSON lines.

Secrets never reach a log line, at any level:

- :class:`SecretRedactionFilter` sits on every root handler. It rewrites each record's
  message (``msg % args``), exception text and stack text, and the handler's formatter is
  wrapped so the FINAL formatted line (structlog key/values, rendered tracebacks, JSON)
  is redacted too. Known values come from :class:`core.config.secrets.Secrets` (every
  ``SecretStr`` field, see :func:`register_secrets`); generic patterns catch bearer /
  bot / basic auth headers, Telegram ``/bot<token>/`` URLs, OAuth 1.0a parameters,
  ``access_token`` / ``api_key`` / ``x-api-key`` / ``client_secret`` / ``password``
  values and URL userinfo passwords.
- Everything is ONE compiled regex, rebuilt only when secrets are registered; a record
  costs one ``re.sub`` over its text.
- The chatty third-party loggers are held at WARNING even when our level is DEBUG
  (:data:`QUIET_LOGGERS`). Redaction does not depend on that: it still holds if an
  operator turns one of them back on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlsplit

import structlog
from pydantic import BaseModel, SecretStr

MASK = "***"
MIN_SECRET_LEN = 4  # shorter "secrets" would mask ordinary words; none of ours is that short

# Third-party loggers kept at WARNING (or our level, if higher). Why: at DEBUG they dump
# request URLs, headers, bodies and OAuth signing material (consumer key, access token,
# bot tokens, API keys), and they are noisy. One list, one place.
QUIET_LOGGERS: tuple[str, ...] = (
    "oauthlib",  # OAuth 1.0a signing: collected params, base string (X consumer key / access token)
    "requests_oauthlib",  # "Updated headers/url/body" with the OAuth Authorization header
    "tweepy",  # "Making API request" with parameters and headers
    "urllib3",  # connection pool / request lines
    "httpx",  # "HTTP Request: POST https://api.telegram.org/bot<token>/..." at INFO
    "httpcore",  # raw request/response header events
    "hpack",  # HTTP/2 header (de)compression: header values, Authorization included
    "praw",
    "prawcore",  # token fetch (client secret, password) and request dumps
    "discord",  # discord.http logs routes and payloads; gateway heartbeats are noise
    "telegram",  # telegram.ext polling, request logs
    "anthropic",  # anthropic._base_client: request options, headers (x-api-key)
    "aiohttp",
    "ib_async.client",  # raw TWS wire messages (">>>", "<<<") at DEBUG
    "ib_async.wrapper",
    "ib_async.Decoder",
    "apscheduler",
    "asyncio",
)

# Generic patterns: each group named ``keepN`` is the prefix kept before the mask.
_SEP = r"""(?:["']?\s*(?:[:=]|(?i:%3D|%253D))\s*b?["']?|["']\s*,\s*b?["'])"""
_VAL = r"""(?:(?!(?i:%26|%2526))[^\s"'&,;<>)\]}])+"""
_GENERIC: tuple[str, ...] = (
    # Authorization: Bearer/Bot/Basic/Token <value> (header dumps, dicts, httpx tuples)
    r"""(?P<keep0>(?i:authorization)""" + _SEP + r"""\s*(?i:bearer|bot|basic|token)\s+)[^\s"',)\]}]+""",
    r"""(?P<keep1>\b(?i:bearer)\s+)[A-Za-z0-9\-._~+/=:]{8,}""",
    # Telegram Bot API URLs: /bot123456:ABC-DEF.../method
    r"""(?P<keep2>/bot)\d+:[A-Za-z0-9_-]+""",
    # OAuth 1.0a parameters, plain or percent-encoded (signature base strings)
    r"""(?P<keep3>\b(?i:oauth_(?:token|token_secret|consumer_key|signature|verifier))""" + _SEP + r")"
    + _VAL,
    # key = value / "key": "value" / ('key', 'value') for the usual credential names
    r"""(?P<keep4>\b(?i:access_token|refresh_token|id_token|api_key|apikey|x-api-key|client_secret"""
    r"""|password|passwd)""" + _SEP + r")" + _VAL,
    # scheme://user:password@host
    r"""(?P<keep5>\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+(?=@)""",
)
_KEEP_GROUPS = tuple(f"keep{i}" for i in range(len(_GENERIC)))

_lock = threading.Lock()
_secret_values: frozenset[str] = frozenset()
_pattern: re.Pattern[str] = re.compile("|".join(_GENERIC))


def _variants(value: str) -> set[str]:
    """The ways a value shows up in a log line: raw, percent-encoded (once, twice), JSON-escaped."""
    once = quote(value, safe="")
    return {value, once, quote(once, safe=""), json.dumps(value)[1:-1]}


def _secret_strings(secrets: Any) -> set[str]:
    """Every ``SecretStr`` value of a Secrets object (plus the password of URL-shaped ones)."""
    values: set[str] = set()
    items: Iterable[tuple[str, Any]] = secrets if isinstance(secrets, BaseModel) else ()
    for _name, field in items:
        if not isinstance(field, SecretStr):
            continue
        raw = field.get_secret_value()
        if not raw:
            continue
        values.add(raw)
        if "://" in raw:
            try:
                password = urlsplit(raw).password
            except ValueError:
                password = None
            if password:
                values.add(password)
    return values


def register_secrets(secrets: Any = None, *, extra: Iterable[str] = ()) -> None:
    """Redact every ``SecretStr`` value of ``secrets`` (a ``Secrets``) and ``extra`` strings.

    Replaces what was registered before; ``register_secrets(None)`` keeps only the generic
    patterns. Rebuilds the one regex the filter uses; cheap to call, not meant per record."""
    global _secret_values, _pattern
    values = _secret_strings(secrets) if secrets is not None else set()
    values.update(v for v in extra if v)
    literals: set[str] = set()
    for v in values:
        if len(v) >= MIN_SECRET_LEN:
            literals.update(_variants(v))
    ordered = sorted(literals, key=lambda s: (-len(s), s))  # longest first: no partial leftovers
    parts = (["(?:" + "|".join(map(re.escape, ordered)) + ")"] if ordered else []) + list(_GENERIC)
    compiled = re.compile("|".join(parts))
    with _lock:
        _secret_values = frozenset(values)
        _pattern = compiled


def _replace(m: re.Match[str]) -> str:
    for name in _KEEP_GROUPS:
        keep = m.group(name)
        if keep is not None:
            return keep + MASK
    return MASK


def redact(text: str) -> str:
    """``text`` with every known secret and credential-looking value replaced by ``***``."""
    return _pattern.sub(_replace, text) if text else text


class SecretRedactionFilter(logging.Filter):
    """Rewrites a record's message, args, exception and stack text; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        # A record that cannot be rewritten is still logged: the formatter redacts the final line.
        with contextlib.suppress(Exception):
            if isinstance(record.msg, str):
                record.msg = redact(record.getMessage())
                record.args = None
            elif isinstance(record.msg, dict):  # structlog event dict (wrap_for_formatter)
                record.msg = {k: _redact_value(v) for k, v in record.msg.items()}
            else:
                record.msg = redact(record.getMessage())
                record.args = None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = redact(record.exc_text)
            if record.stack_info:
                record.stack_info = redact(record.stack_info)
        return True


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, BaseException):
        return value  # rendered (and redacted) by the formatter
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_redact_value(v) for v in value)
    return value


class RedactingFormatter(logging.Formatter):
    """Wraps a formatter; the final line (message, key/values, traceback) is redacted."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


_FILTER = SecretRedactionFilter()


def install_redaction(handler: logging.Handler) -> None:
    """Put the redaction filter and formatter wrapper on ``handler`` (idempotent)."""
    if _FILTER not in handler.filters:
        handler.addFilter(_FILTER)
    fmt = handler.formatter
    if not isinstance(fmt, RedactingFormatter):
        handler.setFormatter(RedactingFormatter(fmt or logging.Formatter()))


def configure(level: str = "INFO", json_output: bool = False, secrets: Any = None) -> None:
    if secrets is not None:
        register_secrets(secrets)
    shared: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # JSON: render exc_info as a traceback string (it used to come out as the tuple's repr);
    # the console renderer formats exceptions itself.
    render: list[Any] = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()] \
        if json_output else [structlog.dev.ConsoleRenderer(colors=False)]
    formatter = structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[
        structlog.stdlib.ProcessorFormatter.remove_processors_meta, *render])
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    install_redaction(handler)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet = max(logging.WARNING, root.level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
    structlog.configure(processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
                        logger_factory=structlog.stdlib.LoggerFactory(), cache_logger_on_first_use=True)
