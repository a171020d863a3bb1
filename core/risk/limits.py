"""Risk limits: the numbers behind the hard rules. Immutable; build from config with
:meth:`RiskLimits.from_config`.

All times are New York wall-clock times. Windows are half-open: ``start <= t < end``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import time
from typing import Any

DEFAULT_RISK_PER_TRADE_PCT: dict[str, float] = {"0dte": 2.0, "1dte": 3.0, "swing": 5.0}

DEFAULT_STRATEGY_WINDOWS: dict[str, tuple[time, time]] = {
    "gamma_0dte": (time(9, 45), time(15, 0)),
    "overnight_1dte": (time(15, 0), time(15, 45)),
    "moc_imbalance": (time(15, 30), time(15, 50)),
    "directional_swing": (time(9, 45), time(15, 45)),
}


def parse_time(value: Any) -> time:
    """``time`` or ``"HH:MM"`` / ``"HH:MM:SS"`` -> naive ``time``. Raises ValueError."""
    if isinstance(value, time):
        t = value
    elif isinstance(value, str):
        t = time.fromisoformat(value.strip())
    else:
        raise TypeError(f"not a time: {value!r}")
    if t.tzinfo is not None:
        raise ValueError(f"window times are New York wall-clock times; drop the tzinfo from {value!r}")
    return t


def parse_window(value: Any) -> tuple[time, time]:
    """``(start, end)`` / ``["09:45", "15:00"]`` / ``"09:45-15:00"`` -> ``(time, time)``."""
    if isinstance(value, str):
        parts = value.split("-")
        if len(parts) != 2:
            raise ValueError(f"window must look like 'HH:MM-HH:MM', got {value!r}")
        value = parts
    if isinstance(value, Mapping):
        value = (value.get("start"), value.get("end"))
    try:
        start, end = value
    except (TypeError, ValueError):
        raise ValueError(f"window must be a (start, end) pair, got {value!r}") from None
    return parse_time(start), parse_time(end)


@dataclass(frozen=True)
class RiskLimits:
    """Hard risk limits. Every field is overridable (see :meth:`from_config`).

    ``risk_per_trade_pct``  max premium per trade, % of account value, keyed by Horizon value
    ``daily_loss_warn_pct`` / ``daily_loss_halt_pct``  daily P&L loss levels, % of account value
    ``max_open_positions``  refuse a new entry when this many positions are already open
    ``max_same_direction``  refuse when this many open positions share the signal's direction
    ``max_spread_pct_of_mid``  (ask - bid) / mid, in %
    ``max_quote_age_s``  age of ``signal.quote.ts`` at ``now``
    ``max_data_age_s``   ``state.data_age_s[symbol]``
    ``max_clock_skew_s`` tolerated amount a timestamp may lie in the future
    ``no_new_0dte_after`` no 0DTE entries at/after this NY time ...
    ``zero_dte_cutoff_before_close_min`` ... nor within this many minutes of an (early) close
    ``strategy_windows``  per-strategy entry windows; strategies not listed only get the
                          session and 0DTE checks
    """

    risk_per_trade_pct: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RISK_PER_TRADE_PCT))
    daily_loss_warn_pct: float = 4.0
    daily_loss_halt_pct: float = 6.0
    max_open_positions: int = 6
    max_same_direction: int = 3
    max_spread_pct_of_mid: float = 10.0
    max_quote_age_s: float = 15.0
    max_data_age_s: float = 60.0
    max_clock_skew_s: float = 5.0
    no_new_0dte_after: time = time(15, 30)
    zero_dte_cutoff_before_close_min: float = 30.0
    strategy_windows: dict[str, tuple[time, time]] = field(
        default_factory=lambda: dict(DEFAULT_STRATEGY_WINDOWS))

    def __post_init__(self) -> None:
        # private copies, so a caller mutating its dict cannot change a frozen limits object
        caps = {str(k): float(v) for k, v in dict(self.risk_per_trade_pct).items()}
        windows = {str(k): parse_window(v) for k, v in dict(self.strategy_windows).items()}
        object.__setattr__(self, "risk_per_trade_pct", caps)
        object.__setattr__(self, "strategy_windows", windows)
        object.__setattr__(self, "no_new_0dte_after", parse_time(self.no_new_0dte_after))
        if not caps:
            raise ValueError("risk_per_trade_pct must name at least one horizon")
        for k, v in caps.items():
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"risk_per_trade_pct[{k!r}] must be a positive number, got {v!r}")
        for name in ("daily_loss_warn_pct", "daily_loss_halt_pct", "max_spread_pct_of_mid",
                     "max_quote_age_s", "max_data_age_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        for name in ("max_clock_skew_s", "zero_dte_cutoff_before_close_min"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a non-negative number, got {v!r}")
        if self.daily_loss_warn_pct > self.daily_loss_halt_pct:
            raise ValueError("daily_loss_warn_pct must not exceed daily_loss_halt_pct")
        for name in ("max_open_positions", "max_same_direction"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        for k, (start, end) in windows.items():
            if not start < end:
                raise ValueError(f"strategy window {k!r}: start {start} must be before end {end}")

    # ------------------------------------------------------------------ helpers
    def cap_pct(self, horizon: str | None) -> float:
        """Risk cap (%) for a horizon; the strictest cap when the horizon is unknown/unlisted."""
        if horizon is not None and horizon in self.risk_per_trade_pct:
            return self.risk_per_trade_pct[horizon]
        return min(self.risk_per_trade_pct.values())

    def window_for(self, strategy: str | None) -> tuple[time, time] | None:
        """Entry window of a strategy (exact name, then case-insensitive), or None."""
        if not strategy:
            return None
        if strategy in self.strategy_windows:
            return self.strategy_windows[strategy]
        folded = strategy.casefold()
        for k, v in self.strategy_windows.items():
            if k.casefold() == folded:
                return v
        return None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | Any | None,
                    strategies: Mapping[str, Any] | None = None) -> RiskLimits:
        """Limits from the ``risk:`` config section (a mapping or a pydantic model).

        Unknown keys raise ValueError, except :data:`NON_LIMIT_KEYS` (``account_value``
        belongs to the account state, not the limits). Times may be ``"HH:MM"`` strings;
        windows may be ``["09:45", "15:00"]`` or ``"09:45-15:00"``. ``risk_per_trade_pct``
        and ``strategy_windows`` are *merged* over the defaults; a window set to ``null``
        removes that strategy's window.

        ``strategies`` is the ``strategies:`` section (``{name: {window: [start, end], ...}}``,
        mappings or models); each strategy's ``window`` becomes its entry window, overriding
        ``strategy_windows``.
        """
        cfg = _as_dict(cfg)
        for k in NON_LIMIT_KEYS:
            cfg.pop(k, None)
        if strategies:
            windows_cfg = dict(cfg.get("strategy_windows") or {})
            for name, sc in dict(strategies).items():
                w = _as_dict(sc).get("window")
                if w is not None:
                    windows_cfg[str(name)] = w
            cfg["strategy_windows"] = windows_cfg
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"unknown risk limit(s): {', '.join(unknown)}")
        kwargs: dict[str, Any] = {}
        for k, v in cfg.items():
            if k == "risk_per_trade_pct":
                caps = dict(DEFAULT_RISK_PER_TRADE_PCT)
                caps.update({str(h): float(p) for h, p in dict(v or {}).items()})
                kwargs[k] = caps
            elif k == "strategy_windows":
                windows: dict[str, Any] = dict(DEFAULT_STRATEGY_WINDOWS)
                for name, w in dict(v or {}).items():
                    if w is None:
                        windows.pop(str(name), None)
                    else:
                        windows[str(name)] = parse_window(w)
                kwargs[k] = windows
            elif k == "no_new_0dte_after":
                kwargs[k] = parse_time(v)
            elif k in ("max_open_positions", "max_same_direction"):
                if isinstance(v, bool) or not isinstance(v, int):
                    if isinstance(v, float) and v.is_integer():
                        v = int(v)
                    else:
                        raise ValueError(f"{k} must be an integer, got {v!r}")
                kwargs[k] = v
            else:
                if isinstance(v, bool):
                    raise ValueError(f"{k} must be a number, got {v!r}")
                kwargs[k] = float(v)
        return cls(**kwargs)

    @classmethod
    def from_settings(cls, settings: Any) -> RiskLimits:
        """Limits from the application settings object (``settings.risk`` + ``settings.strategies``)."""
        return cls.from_config(getattr(settings, "risk", None), getattr(settings, "strategies", None))


NON_LIMIT_KEYS = frozenset({"account_value"})


def _as_dict(obj: Any) -> dict[str, Any]:
    """A mapping, a pydantic model (``model_dump``) or None -> a plain dict."""
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dict(dump())
    raise TypeError(f"expected a mapping or a model, got {type(obj).__name__}")
