"""Deterministic texts from ``templates/overseer/*.j2`` — the fallback whenever the model is
unavailable or its text fails a guard. Every number in them comes from the input data and is
formatted by the shared filters (``core.format.jinja``): ``$0.86`` for an option price,
``$1,000.00`` for money, ``|trim`` for plain figures (``5``, ``1,234.5``)."""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChainableUndefined, Environment, FileSystemLoader, TemplateNotFound

from core.format.jinja import register as register_number_filters

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "templates" / "overseer"


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
    register_number_filters(e)  # money, price, trim, strike, ... (core.format): as posts and reports
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
