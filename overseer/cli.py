"""``python main.py overseer review SIGNAL.json [--state STATE.json] [--at ISO8601]``.

``--at`` (main.py) is the ``now`` of the review: an aware time (an offset is required on the command
line); without it, the wall clock.

    from overseer.cli import InputFileError, review_file
    try:
        result = asyncio.run(review_file(args.signal, args.state, settings, secrets, now))   # dict
    except InputFileError as exc:
        print(exc, file=sys.stderr); sys.exit(2)
    print(json.dumps(result, indent=2))

``review_file`` is a coroutine function (as ``main.py`` calls it); ``review_file_sync`` runs it
on its own event loop for synchronous callers.

Output: ``{"signal_id", "decision", "reasons": [codes], "details": {code: text},
"reviewed_by": [...], "ai": {"status": "ok"|"unavailable"|"skipped", ...}, "concerns",
"summary", "premium_at_risk", "risk_pct"}``.

- A file that cannot be read or is not JSON raises :class:`InputFileError` (one line).
- JSON that is not a valid signal (or state) is a ``reject`` with ``BAD_INPUT``, not an error.
- Without ``--state`` the documented :class:`core.risk.RiskState` defaults apply (a flat, idle
  $100k account, nothing open, not halted).
- No Redis is used: budget and cache are in memory; the audit records stay in memory.
- The model is reached at ``ANTHROPIC_BASE_URL`` when set; without ``ANTHROPIC_API_KEY`` the
  review is rules-only with ``ai.status == "unavailable"`` (``error``/``reason`` ``"no api key"``).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.clock.clock import Clock, LiveClock
from core.config.model import Settings
from core.config.secrets import Secrets
from overseer.ai.gateway import AiGateway
from overseer.review.reviewer import ReviewContext, Reviewer


class InputFileError(Exception):
    """A SIGNAL/STATE file that cannot be read or is not JSON (one-line message; exit 2)."""


class _FixedClock(Clock):
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


def read_json_file(path: str, what: str) -> Any:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except IsADirectoryError:
        raise InputFileError(f"{path}: cannot read {what} file (it is a directory)") from None
    except FileNotFoundError:
        raise InputFileError(f"{path}: cannot read {what} file (no such file)") from None
    except OSError as exc:
        raise InputFileError(
            f"{path}: cannot read {what} file ({exc.strerror or type(exc).__name__})"
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputFileError(f"{path}: {what} file is not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(
            f"{path}: {what} file is not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
        ) from None
    except RecursionError:
        raise InputFileError(f"{path}: {what} file is nested too deeply") from None


async def review_file(
    signal_path: str,
    state_path: str | None,
    settings: Settings,
    secrets: Secrets,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Review a SIGNAL.json file (optionally against a STATE.json) and return the verdict dict.

    Raises :class:`InputFileError` only for unreadable / non-JSON files; everything else is a
    verdict. ``now`` defaults to the wall clock (the CLI has no service clock)."""
    raw_signal = read_json_file(signal_path, "signal")
    raw_state: Any = read_json_file(state_path, "state") if state_path else None
    if now is None:
        now = LiveClock().now()
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    gateway = AiGateway(settings, secrets, _FixedClock(now))
    try:
        reviewer = Reviewer(settings, gateway)
        outcome = await reviewer.review(raw_signal, ReviewContext(state=raw_state), now)
    finally:
        await gateway.aclose()
    return outcome.as_dict()


def review_file_sync(
    signal_path: str,
    state_path: str | None,
    settings: Settings,
    secrets: Secrets,
    now: datetime | None = None,
) -> dict[str, Any]:
    """:func:`review_file` for synchronous code (runs its own event loop)."""
    return asyncio.run(review_file(signal_path, state_path, settings, secrets, now))
