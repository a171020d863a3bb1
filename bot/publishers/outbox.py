"""The local outbox (demo / dry-run): one JSON line per message in ``<out_dir>/outbox.jsonl``.

Each line has exactly the keys ``channel, tier, ts, correlation_id, message_id,
reply_to, event, text, embed, title``, plus ``attachment`` (the path of the file a Discord
report post carries) on the lines that have one: ``embed`` is the Discord embed as posted (title,
description, fields, footer, color; null for a plain message), ``title`` the Reddit
submission title (null for everything else, comments included). ``ts`` is the (simulated) delivery time, ISO 8601 with
the America/New_York offset. Message ids are derived from the delivery's
idempotency key (itself derived from correlation id, event id, channel and tier),
so the same seed gives a byte-identical outbox, and ``find_existing`` can tell
whether a delivery was written before a crash by looking for its id.

Threading mirrors the platforms: Discord updates are threaded under the root
message, X replies to the last tweet of the chain, Reddit comments on the submission.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bot.publishers.base import Payload, PostMeta, PostResult, PublishError, Sink, ThreadRef
from core.bus.events import NY
from core.clock.clock import Clock

OUTBOX_KEYS: tuple[str, ...] = ("channel", "tier", "ts", "correlation_id", "message_id", "reply_to", "event",
                                "text", "embed", "title")
OUTBOX_OPTIONAL_KEYS: tuple[str, ...] = ("attachment",)
OUTBOX_FILE = "outbox.jsonl"


def outbox_message_id(channel: str, idempotency_key: str) -> str:
    return f"{channel}-{idempotency_key[:12]}"


class OutboxSink(Sink):
    channel = "outbox"

    def __init__(self, out_dir: str | os.PathLike[str], clock: Clock, *, fsync: bool = False) -> None:
        self.path = Path(out_dir) / OUTBOX_FILE
        self.clock = clock
        self.fsync = fsync
        self._repaired = False

    def target_for(self, channel: str, tier: str) -> str | None:
        return f"{channel}:{tier}"

    def _repair(self) -> None:
        """Drop a torn last line (a crash in the middle of a write) so the file stays valid JSONL."""
        if self._repaired:
            return
        self._repaired = True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with self.path.open("r+b") as fh:
                fh.truncate(cut)

    @staticmethod
    def _parent(meta: PostMeta, reply_to: ThreadRef | None) -> str | None:
        if reply_to is None:
            return None
        if meta.channel == "x":
            return reply_to.last_id or reply_to.root_id
        return reply_to.root_id

    async def post(self, channel_target: str, text: str, embed: dict[str, Any] | None = None, *,
                   reply_to: ThreadRef | None = None, idempotency_key: str, title: str | None = None,
                   thread_name: str | None = None, meta: PostMeta | None = None,
                   attachment: str | None = None) -> PostResult:
        if meta is None:
            raise PublishError("outbox needs the delivery meta", permanent=True)
        self._repair()
        mid = outbox_message_id(meta.channel, idempotency_key)
        parent = self._parent(meta, reply_to)
        line = {
            "channel": meta.channel,
            "tier": meta.tier,
            "ts": self.clock.now().astimezone(NY).isoformat(timespec="milliseconds"),
            "correlation_id": meta.correlation_id,
            "message_id": mid,
            "reply_to": parent,
            "event": meta.event,
            "text": text,
            "embed": embed,
            "title": title if meta.channel == "reddit" and parent is None else None,
        }
        if attachment:
            line["attachment"] = attachment
        try:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
                fh.flush()
                if self.fsync:
                    os.fsync(fh.fileno())
        except OSError as exc:
            raise PublishError(f"outbox write failed: {exc.strerror or exc}", ambiguous=True) from None
        thread_id = reply_to.root_id if (reply_to is not None and meta.channel == "discord") else None
        return PostResult(mid, thread_id=thread_id, reply_to=parent)

    async def find_existing(self, idempotency_key: str, *, channel_target: str | None = None,
                            reply_to: ThreadRef | None = None, meta: PostMeta | None = None,
                            expected: Payload | None = None) -> PostResult | None:
        self._repair()
        if not self.path.exists():
            return None
        suffix = "-" + idempotency_key[:12]
        with self.path.open(encoding="utf-8") as fh:
            for raw in fh:
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue
                mid = str(rec.get("message_id", ""))
                if mid.endswith(suffix) and (meta is None or rec.get("channel") == meta.channel):
                    thread_id = rec.get("reply_to") if rec.get("channel") == "discord" else None
                    return PostResult(mid, thread_id=thread_id, reply_to=rec.get("reply_to"))
        return None
