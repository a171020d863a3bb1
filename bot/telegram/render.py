"""Message texts: Jinja2 templates in ``templates/telegram`` rendered for Telegram's HTML
parse mode.

Every dynamic value is escaped (``autoescape=True``: ``& < > " '``), so text from outside
(signal triggers, the overseer's concerns and explanation, alert messages, report
summaries, strategy and user names, command arguments) can never open a tag or break the
markup. Outside text is also made one line and capped in length by :func:`clip` before it
reaches a template. ``StrictUndefined``: a template that asks for a missing field fails
loudly instead of printing a blank.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from core.clock.calendar import NY
from core.format.jinja import register as register_number_filters
from core.format.numbers import finite

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates" / "telegram"

_CTRL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_WS = re.compile(r"\s+")


def clip(value: Any, limit: int = 200) -> str:
    """Outside text as one clean line: no control characters or line breaks, capped."""
    s = _CTRL.sub(" ", "" if value is None else str(value))
    s = _WS.sub(" ", s).strip()
    if len(s) > limit:
        s = s[: max(0, limit - 1)].rstrip() + "…"
    return s


def clip_list(values: Any, item_limit: int = 160, max_items: int = 8) -> list[str]:
    out = [clip(v, item_limit) for v in list(values or [])[:max_items]]
    extra = len(list(values or [])) - max_items
    if extra > 0:
        out.append(f"(+{extra} more)")
    return [v for v in out if v]


def ny_time(ms: Any) -> str:
    f = finite(ms)
    if not f:
        return "—"
    return datetime.fromtimestamp(f / 1000, tz=UTC).astimezone(NY).strftime("%H:%M:%S ET")


def ny_datetime(ms: Any) -> str:
    f = finite(ms)
    if not f:
        return "—"
    return datetime.fromtimestamp(f / 1000, tz=UTC).astimezone(NY).strftime("%Y-%m-%d %H:%M ET")


def seconds(x: Any) -> str:
    f = finite(x)
    if f is None:
        return "n/a"
    if f < 120:
        return f"{f:.0f}s"
    if f < 7200:
        return f"{f / 60:.0f}m"
    return f"{f / 3600:.1f}h"


class Renderer:
    def __init__(self, templates_dir: Path = TEMPLATES_DIR) -> None:
        self.env = Environment(loader=FileSystemLoader(str(templates_dir)), autoescape=True,
                               undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                               keep_trailing_newline=False)
        register_number_filters(self.env)  # money, signed_money, pct, price, ... (core.format)
        self.env.filters.update(ny_time=ny_time, ny_datetime=ny_datetime, seconds=seconds, clip=clip)

    def render(self, name: str, **ctx: Any) -> str:
        text = self.env.get_template(f"{name}.j2").render(**ctx)
        return re.sub(r"\n{3,}", "\n\n", text).strip()

    def reply(self, macro: str, /, **kwargs: Any) -> str:
        """A short reply: macro ``macro`` of ``replies.j2``."""
        fn = getattr(self.env.get_template("replies.j2").module, macro)
        return str(fn(**kwargs)).strip()
