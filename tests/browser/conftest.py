"""Fixtures of the page checks: the report tests' trading day (its SimClock, bus and ReportService
builder), the browser, and where screenshots go (``var/test-artifacts/browser/``, git-ignored; the
run's end lists them, or says why the browser check was skipped)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser._cdp import find_chromium
from tests.reports.conftest import day, make_service, sim_clock  # noqa: F401  (the report tests' fixtures)

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "browser"
_NOTES: list[str] = []


@pytest.fixture(scope="session")
def chromium() -> str:
    exe = find_chromium()
    if exe is None:
        reason = ("Chromium not found (none of chromium, chromium-browser, google-chrome on PATH, or "
                  "QUANTICITY_CHROMIUM is not a file); scripts/test.sh installs Debian's chromium when it runs "
                  "as root with apt-get: the browser check did not run")
        _NOTES.append(f"browser check SKIPPED: {reason}")
        pytest.skip(reason)
    return exe


@pytest.fixture
def artifact():
    """``artifact(name)`` -> the path of a kept screenshot, listed at the end of the run."""

    def path(name: str) -> Path:
        p = ARTIFACTS / name
        _NOTES.append(f"browser screenshot: {p}")
        return p

    return path


def pytest_terminal_summary(terminalreporter) -> None:
    for note in dict.fromkeys(_NOTES):
        terminalreporter.write_line(note)
