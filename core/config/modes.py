"""The run mode decides the parts; a configuration that contradicts its mode is refused at start.

| mode      | market.source        | execution.broker | distribution.sink |
|-----------|----------------------|------------------|-------------------|
| `demo`    | simulator            | paper            | outbox            |
| `dry-run` | ibkr (real market)   | paper            | outbox            |
| `live`    | ibkr (real market)   | ibkr             | live or outbox    |

Two lines no configuration may cross: live money never runs on simulated data, and simulated
fills never reach a paying channel. ``dry-run`` therefore posts to the local outbox only: its
fills are simulated, so publishing them to subscribers would present rehearsal trades as real
ones. ``live`` may keep the outbox (going live quietly first) - that lies to nobody.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.config.model import Settings

ALLOWED: dict[str, dict[str, tuple[str, ...]]] = {
    "demo": {"market.source": ("simulator",), "execution.broker": ("paper",), "distribution.sink": ("outbox",)},
    "dry-run": {"market.source": ("ibkr",), "execution.broker": ("paper",), "distribution.sink": ("outbox",)},
    "live": {"market.source": ("ibkr",), "execution.broker": ("ibkr",), "distribution.sink": ("live", "outbox")},
}


def contradictions(settings: Settings) -> list[str]:
    """One short phrase per key whose value the mode does not allow (empty: consistent)."""
    values = {"market.source": settings.market.source, "execution.broker": settings.execution.broker,
              "distribution.sink": settings.distribution.sink}
    out = []
    for key, allowed in ALLOWED[settings.mode.value].items():
        if values[key] not in allowed:
            out.append(f"{key}: {values[key]} (needs {' or '.join(allowed)})")
    return out
