"""The one small interface every publisher ("sink") implements.

A sink posts one already-rendered message and, for crash reconciliation, can look
up whether a message carrying a given idempotency key already exists:

    await sink.post(channel_target, text, embed, reply_to=ThreadRef|None, idempotency_key=key,
                    title=..., thread_name=..., meta=PostMeta, attachment=path|None) -> PostResult
    await sink.find_existing(key, channel_target=..., reply_to=..., meta=...,
                             expected=Payload) -> PostResult | None

Threading (``reply_to``) is platform-specific and decided by the sink:

- Discord (bot): the first message of a trade on a tier channel is the root; the
  first update creates a thread from it (thread id returned in ``PostResult``),
  later updates post into that thread.
- X: every update replies to the LAST tweet of the chain (``ThreadRef.last_id``),
  which is what X renders as a thread.
- Reddit: the root is a submission; every update is a top-level comment on it.

No message carries an internal identifier (no idempotency key, no event id): what a
subscriber reads is only the rendered text. A delivery's payload is fixed when it is
scheduled (rendered once, stored with the delivery), so ``find_existing`` recognises
the post by its exact content (:class:`Payload`, compared through :func:`same_text`)
among the account's recent posts in the same place (channel, thread, parent), plus
whatever the platform itself keeps (Discord returns the send's nonce on a re-send).
Every position text carries the event's time to the second, so two teasers of two
trades on the same underlying and direction still differ.

``attachment`` (Discord only): the path of a file to attach (a report page); the other
sinks ignore it (their text carries the link or says where to find the page).

Errors are reported as :class:`PublishError` with the facts the scheduler needs
(rate limited + retry-after, permanent, or "ambiguous" = the post may have happened).
Error texts never contain secrets (library messages are truncated and carry no tokens).
"""

from __future__ import annotations

import asyncio
import html
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client import Counter

T = TypeVar("T")

ATTACHMENTS_SKIPPED = Counter("quanticity_report_attachments_skipped_total",
                              "Report pages posted without their file attached", ["channel", "reason"])

CHANNELS: tuple[str, ...] = ("discord", "x", "reddit")
TIERS: tuple[str, ...] = ("premium", "basic", "free")


_URL = re.compile(r"https?://\S+")
_SPACE = re.compile(r"\s+")


def same_text(posted: str | None, expected: str | None) -> bool:
    """Whether a text read back from a platform is the text we sent.

    Platforms hand back what they stored, not always byte for byte: X escapes ``&<>`` as
    HTML entities and shortens every link to a t.co URL; trailing spaces and line breaks
    may be trimmed. Entities are unescaped, every URL counts as one placeholder and runs
    of whitespace as one space; everything else must match exactly.
    """
    if posted is None or expected is None:
        return False

    def norm(s: str) -> str:
        return _SPACE.sub(" ", _URL.sub("<url>", html.unescape(s))).strip()

    return norm(posted) == norm(expected)


@dataclass(frozen=True, slots=True)
class ThreadRef:
    """Where a trade's chain lives on one channel+tier."""

    root_id: str  # the first message of the chain (Discord message, tweet, t3_ submission)
    thread_id: str | None = None  # Discord thread created from the root (None until created)
    last_id: str | None = None  # the newest message of the chain (X replies to it)


@dataclass(frozen=True, slots=True)
class PostResult:
    message_id: str
    thread_id: str | None = None  # Discord: the thread the message went into
    reply_to: str | None = None  # the message it is threaded under (None for a root)


@dataclass(frozen=True, slots=True)
class Payload:
    """What was (or will be) posted for one delivery: how ``find_existing`` recognises it."""

    text: str
    embed: dict[str, Any] | None = None
    title: str | None = None  # Reddit submission title


@dataclass(frozen=True, slots=True)
class PostMeta:
    """Facts about a delivery that only the local outbox needs (live sinks ignore them)."""

    channel: str
    tier: str
    event: str
    correlation_id: str


class PublishError(Exception):
    """A failed post.

    ``rate_limited``: the platform refused for now; ``retry_after`` seconds (if known).
    ``permanent``: retrying can never succeed (invalid message, deleted parent).
    ``ambiguous``: the request may have been applied (timeout, dropped connection, 5xx);
    the scheduler reconciles with ``find_existing`` before posting again.
    """

    def __init__(self, message: str, *, rate_limited: bool = False, retry_after: float | None = None,
                 permanent: bool = False, ambiguous: bool = False) -> None:
        super().__init__(message[:300])
        self.rate_limited = rate_limited
        self.retry_after = retry_after
        self.permanent = permanent
        self.ambiguous = ambiguous


class Sink(ABC):
    """A publisher. ``channel`` is "discord", "x", "reddit" (or "outbox" for the local file)."""

    channel: str = ""

    def target_for(self, channel: str, tier: str) -> str | None:
        """The channel target (Discord channel id, subreddit, ...) of a tier, or None if not configured."""
        return tier

    @property
    def threads(self) -> bool:
        """Whether updates can be threaded under their root on this sink."""
        return True

    @abstractmethod
    async def post(self, channel_target: str, text: str, embed: dict[str, Any] | None = None, *,
                   reply_to: ThreadRef | None = None, idempotency_key: str, title: str | None = None,
                   thread_name: str | None = None, meta: PostMeta | None = None,
                   attachment: str | None = None) -> PostResult:
        """Post one message; raise :class:`PublishError` on failure."""

    @abstractmethod
    async def find_existing(self, idempotency_key: str, *, channel_target: str | None = None,
                            reply_to: ThreadRef | None = None, meta: PostMeta | None = None,
                            expected: Payload | None = None) -> PostResult | None:
        """The already-posted message of this delivery (``expected`` is its payload), or None
        (raise PublishError if unsure). Without ``expected`` a live sink cannot tell: None."""

    async def close(self) -> None:
        """Release connections."""


class SerialThreadCaller:
    """Runs a blocking client's calls in a worker thread, one at a time.

    ``asyncio.wait_for`` can give up on a call whose thread keeps running (and may
    still post, e.g. after the client slept on a rate limit). The next call - the
    reconciliation lookup or a re-post - first waits for that abandoned call to
    finish, so a lookup never races a post that is still under way.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._pending: asyncio.Future[Any] | None = None

    async def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        async with self._lock:
            if self._pending is not None and not self._pending.done():
                await asyncio.wait({self._pending})
            fut: asyncio.Future[T] = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
            self._pending = fut
        return await asyncio.shield(fut)
