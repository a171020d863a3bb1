"""The strategies, by config name. Each is a pure, frozen, parameterized class."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.signals.base import Strategy
from core.signals.strategies.directional_swing import DirectionalSwing
from core.signals.strategies.gamma_0dte import Gamma0DTE
from core.signals.strategies.moc_imbalance import ImbalancePrediction, MocImbalance, predict_closing_imbalance
from core.signals.strategies.overnight_1dte import Overnight1DTE

__all__ = [
    "REGISTRY",
    "DirectionalSwing",
    "Gamma0DTE",
    "ImbalancePrediction",
    "MocImbalance",
    "Overnight1DTE",
    "build_strategy",
    "predict_closing_imbalance",
]

REGISTRY: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (Gamma0DTE, Overnight1DTE, MocImbalance, DirectionalSwing)
}


def build_strategy(name: str, params: Mapping[str, Any] | None = None) -> Strategy:
    """The strategy named ``name`` with ``params`` overriding its defaults.

    Raises KeyError for an unknown name and ValueError for an unknown/invalid parameter.
    """
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}; known: {', '.join(sorted(REGISTRY))}") from None
    return cls.from_params(params)
