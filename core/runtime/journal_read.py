"""Read a demo's ``journal.jsonl`` back into typed events (post-run views: the admin cards of
``outbox.html``, the demo summary).

A journal line is an event's JSON with ``ts`` written as ISO 8601 in New York time
(:func:`core.runtime.demo.journal_line`); it is turned back into epoch ms and validated by the
event's own model. Only the wanted types are parsed (a demo journal is tens of MB of quotes).
A line that does not read back is skipped and counted, never fatal.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from core.bus.events import REGISTRY, Event

log = logging.getLogger("quanticity.journal")


@dataclass
class JournalRead:
    events: list[Event] = field(default_factory=list)
    skipped: int = 0  # lines of a wanted type that did not read back


def _type_of(line: str) -> str:
    head = line[:60]
    if not head.startswith('{"type":"'):
        return ""
    return head[9:].split('"', 1)[0]


def read_events(path: str | os.PathLike[str], types: Iterable[str]) -> JournalRead:
    """The journal's events of ``types``, in file order; a missing file reads as empty."""
    wanted = frozenset(types)
    out = JournalRead()
    p = Path(path)
    if not p.exists():
        return out
    with p.open(encoding="utf-8") as fh:
        for line in fh:
            etype = _type_of(line)
            if etype not in wanted:
                continue
            try:
                body = json.loads(line)
                body["ts"] = round(datetime.fromisoformat(body["ts"]).timestamp() * 1000)
                out.events.append(REGISTRY[etype].model_validate(body))
            except (ValueError, KeyError, TypeError, ValidationError):
                out.skipped += 1
    if out.skipped:
        log.warning("%s: %d journal line(s) did not read back and were skipped", p, out.skipped)
    return out
