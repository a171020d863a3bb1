"""Anomaly watch: detectors (pure), alerts raised once / cleared once, CRITICAL halts."""

from overseer.anomaly.alerts import AlertBook
from overseer.anomaly.detectors import Finding
from overseer.anomaly.service import AnomalyService

__all__ = ["AlertBook", "AnomalyService", "Finding"]
