"""The overseer: hard rules + Claude review of every signal, anomaly watch, narratives.

Public API::

    from overseer.review import ReviewService        # Service "overseer", streams ("signals",)
    from overseer.anomaly import AnomalyService      # Service "anomaly", streams ("orders", "positions", "deliveries")
    from overseer.narratives import Narrator          # explain_trade / commentary / daily_summary
    from overseer.cli import review_file, InputFileError

Submodules are imported lazily so ``import overseer`` stays cheap (bot/ imports models only).
"""

from __future__ import annotations

from typing import Any

__all__ = ["AnomalyService", "InputFileError", "Narrator", "ReviewService", "review_file"]


def __getattr__(name: str) -> Any:
    if name == "ReviewService":
        from overseer.review import ReviewService

        return ReviewService
    if name == "AnomalyService":
        from overseer.anomaly import AnomalyService

        return AnomalyService
    if name == "Narrator":
        from overseer.narratives import Narrator

        return Narrator
    if name in ("review_file", "InputFileError"):
        from overseer import cli

        return getattr(cli, name)
    raise AttributeError(f"module 'overseer' has no attribute {name!r}")
