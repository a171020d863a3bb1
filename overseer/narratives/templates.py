"""Deterministic texts from ``templates/overseer/*.j2`` — the fallback whenever the model is
unavailable or its text fails a guard. Every number in them comes from the input data."""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChainableUndefined, Environment, FileSystemLoader, TemplateNotFound

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "templates" / "overseer"


def fmt_num(x: Any, places: int = 2) -> str:
    """``5.0 -> "5"``, ``5.05 -> "5.05"``, ``1234.5 -> "1,234.5"``; non-numbers as given."""
    if isinstance(x, bool) or x is None:
        return "" if x is None else str(x)
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(f):
        return "n/a"
    s = f"{round(f, places):,.{places}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def fmt_price(x: Any) -> str:
    """Option/underlying price: always 2 decimals (``5 -> "5.00"``)."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    return f"{f:,.2f}" if math.isfinite(f) else "n/a"


def fmt_money(x: Any) -> str:
    """Dollars: ``1000 -> "$1,000"``, ``812.4 -> "$812.40"``, ``-120 -> "-$120"``."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(f):
        return "n/a"
    sign = "-" if f < 0 else ""
    a = round(abs(f), 2)
    return f"{sign}${a:,.0f}" if a == int(a) else f"{sign}${a:,.2f}"


def humanize(key: Any) -> str:
    return str(key).replace("_", " ").strip()


@lru_cache(maxsize=1)
def env() -> Environment:
    e = Environment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=ChainableUndefined,
    )
    e.filters["num"] = fmt_num
    e.filters["money"] = fmt_money
    e.filters["price"] = fmt_price
    e.filters["human"] = humanize
    return e


def render(name: str, **ctx: Any) -> str:
    """Render a template to one line (whitespace collapsed)."""
    text = env().get_template(name).render(**ctx)
    return re.sub(r"\s+", " ", text).strip()


def has_template(name: str) -> bool:
    try:
        env().get_template(name)
    except TemplateNotFound:
        return False
    return True


def scalar_facts(data: Any, limit: int = 6) -> list[tuple[str, Any]]:
    """The first ``limit`` scalar (number / short string) entries of a mapping, in order."""
    out: list[tuple[str, Any]] = []
    if not isinstance(data, dict):
        return out
    for k, v in data.items():
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, (int, float)) and math.isfinite(float(v)) or isinstance(v, str) and 0 < len(v) <= 60:
            out.append((str(k), v))
        if len(out) >= limit:
            break
    return out
