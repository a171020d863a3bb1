"""Fixtures of the report tests: the SimClock starts on the previous session's close
(2026-11-19 15:50 New York) so a whole day, pre-market included, can be published in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.clock.clock import SimClock
from reports.service import ReportService
from tests.helpers import make_context
from tests.reports._day import START, TradingDay


@pytest.fixture
def sim_clock() -> SimClock:
    return SimClock(START)


@pytest.fixture
def day(bus) -> TradingDay:
    return TradingDay(bus)


@pytest.fixture
def make_service(bus, tmp_path: Path):
    """``make_service(**report_settings)`` -> a ReportService writing under ``tmp_path/reports``."""

    def build(out_dir: Path | None = None, **reports: object) -> ReportService:
        overrides = {"commentary": "template", **reports}
        ctx = make_context(bus, out_dir=str(out_dir or tmp_path), reports=overrides)
        return ReportService(ctx)

    return build
