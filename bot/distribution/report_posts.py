"""Report posts: which page a tier gets, the day it is about, and how a subscriber opens it.

- ``report_link``: ``<distribution.report_base_url>/<file name>`` when a public base URL is
  configured, else "" - a bare file name is never posted (nobody can open it).
- ``report_attachment``: Discord posts carry the tier's page itself (``files[0]``) when it is
  an existing HTML file within ``distribution.report_attach_max_bytes``; otherwise the post
  goes out without it (the caller logs and counts why: missing / too_large).
- ``report_view``: what a report template gets; ``where`` is the configured wording for
  where the page can be found when there is no link (``distribution.report_where``).

Each tier only ever gets its own file (``ReportEvent.paths[tier]``; premium may fall back
to the generic ``path``); a tier without its file gets no post.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from bot.distribution.text import clean
from core.bus.events import NY, ReportEvent

REPORT_LABELS = {"premarket": "Pre-market", "intraday": "Intraday", "close": "Market close", "monthly": "Monthly"}
_RECAP_FILE = re.compile(r"(\d{4})-(\d{2})-monthly-")


REPORT_WHERE = "in the free channel of our Discord"
REPORT_ATTACH_MAX_BYTES = 8 * 1024 * 1024


def file_name(path: str) -> str:
    return PureWindowsPath(path).name if "\\" in path else PurePosixPath(path).name


def report_link(path: str, base_url: str | None) -> str:
    """The page's public URL (``<base_url>/<file name>``), or "" without a base URL: a bare file
    name is never shown (a subscriber cannot open it)."""
    if not base_url:
        return ""
    name = clean(file_name(path), 120).replace(" ", "%20")
    return f"{base_url.rstrip('/')}/{name}"


def report_attachment(path: str, max_bytes: int) -> tuple[str | None, str]:
    """``(path, "")`` when the page can be attached to a Discord post, else ``(None, why)``:
    "missing" (no such file / not an HTML page) or "too_large" (over ``max_bytes``)."""
    try:
        st = os.stat(path)
    except OSError:
        return None, "missing"
    if not os.path.isfile(path) or not file_name(path).lower().endswith((".html", ".htm")):
        return None, "missing"
    if st.st_size > max_bytes:
        return None, "too_large"
    return path, ""


def report_path(ev: ReportEvent, tier: str) -> str | None:
    """The tier's own report file; premium may fall back to the generic ``path``; never a lower tier upward."""
    p = ev.paths.get(tier)
    if p:
        return p
    if tier == "premium" and ev.path:
        return ev.path
    return None


def report_date(ev: ReportEvent, path: str) -> str:
    """The day a report is about; for the monthly recap the month, which its file is named after
    (``2026-11-monthly-<tier>.html``, reports.recap_render.recap_stem): it is posted in the next month."""
    m = _RECAP_FILE.match(path.replace("\\", "/").rsplit("/", 1)[-1]) if ev.kind == "monthly" else None
    if m and int(m.group(1)) >= 1 and 1 <= int(m.group(2)) <= 12:
        return datetime(int(m.group(1)), int(m.group(2)), 1).strftime("%B %Y")
    return ev.dt.astimezone(NY).strftime("%b %d, %Y")


def report_view(ev: ReportEvent, tier: str, base_url: str | None, *, where: str = REPORT_WHERE,
                attached: bool = False, too_large: bool = False) -> dict[str, Any] | None:
    """``link``: the full URL or ""; ``where``: where the page is when there is no link;
    ``attached`` / ``too_large``: the Discord post carries the file / could not (over the limit)."""
    path = report_path(ev, tier)
    if path is None:
        return None
    view: dict[str, Any] = {
        "kind": ev.kind,
        "label": REPORT_LABELS.get(ev.kind, ev.kind),
        "date": report_date(ev, path),
        "link": report_link(path, base_url),
        "where": clean(where, 200) or REPORT_WHERE,
        "attached": attached,
        "too_large": too_large,
    }
    if tier == "premium":
        view["summary"] = clean(ev.summary, 600)
    return view
