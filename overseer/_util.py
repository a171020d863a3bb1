"""Small helpers shared by the overseer packages (no I/O)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import fields
from datetime import datetime
from typing import Any

from core.clock.calendar import NY
from core.config.model import Settings
from core.risk import RiskLimits

_LIMIT_FIELDS = {f.name for f in fields(RiskLimits)}


def risk_limits(settings: Settings) -> RiskLimits:
    """The hard-rule limits from ``settings.risk`` plus each configured strategy's entry window."""
    cfg = {k: v for k, v in settings.risk.model_dump().items() if k in _LIMIT_FIELDS}
    cfg["strategy_windows"] = {name: (s.window[0], s.window[1]) for name, s in settings.strategies.items()}
    return RiskLimits.from_config(cfg)


def text(v: Any) -> str:
    """Redis value -> str (clients may or may not decode responses)."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return "" if v is None else str(v)


def finite(x: Any, default: float = 0.0) -> float:
    """``x`` as a finite float, else ``default`` (event fields must stay JSON-serialisable)."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return default
    return f if math.isfinite(f) else default


def jsonable(obj: Any) -> Any:
    """A copy of ``obj`` that ``json.dumps(allow_nan=False)`` accepts (NaN/inf -> None)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, datetime):
        return obj.isoformat()
    return str(obj)


def canonical_json(obj: Any) -> str:
    """Deterministic compact JSON (sorted keys, ASCII only, no NaN)."""
    return json.dumps(
        jsonable(obj), sort_keys=True, ensure_ascii=True, separators=(",", ":"), allow_nan=False
    )


def ny_day(now: datetime) -> str:
    return now.astimezone(NY).date().isoformat()


def parse_ts_ms(value: Any) -> int | None:
    """Epoch ms from an int/float (s or ms) or an ISO 8601 string with offset; None if unusable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        v = float(value)
        if not math.isfinite(v) or v <= 0:
            return None
        return int(v if v > 2e10 else v * 1000)
    if isinstance(value, str):
        s = value.strip()
        try:
            return parse_ts_ms(float(s))
        except ValueError:
            pass
        try:
            dt = datetime.fromisoformat(s)
        except ValueError:
            return None
        if dt.tzinfo is None or dt.utcoffset() is None:
            return None
        return int(dt.timestamp() * 1000)
    return None


def load_json_obj(raw: Any) -> dict[str, Any] | None:
    """A Redis snapshot value decoded as a JSON object, or None."""
    if raw is None:
        return None
    try:
        obj = json.loads(text(raw))
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


_ASOF = re.compile(r'"asof"\s*:\s*("([^"]*)"|[0-9.eE+]+)')


def snapshot_asof_ms(raw: Any) -> int | None:
    """``asof`` (ms) of a snapshot JSON without decoding thousands of chain rows (falls back to JSON)."""
    if raw is None:
        return None
    s = text(raw)
    m = _ASOF.search(s[:2000])
    if m is not None:
        return parse_ts_ms(m.group(2) if m.group(2) is not None else m.group(1))
    obj = load_json_obj(s)
    return parse_ts_ms(obj.get("asof")) if obj else None
