"""The verdict of the hard risk rules."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from core.domain.reasons import Reason

_ORDER = {r: i for i, r in enumerate(Reason)}


class RiskDecision(BaseModel):
    """``ok`` is True exactly when ``reasons`` is empty.

    ``reasons`` holds every failing code once, in :class:`Reason` declaration order;
    ``details`` has one human-readable sentence (or several joined by ``"; "``) per code.
    Construct with just ``reasons``/``details``: ``ok`` is derived and order/duplicates
    are normalised.
    """

    model_config = ConfigDict(frozen=True)

    ok: bool
    reasons: list[Reason]
    details: dict[Reason, str]

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        reasons = [Reason(r) for r in data.get("reasons") or []]
        details = {Reason(k): str(v) for k, v in dict(data.get("details") or {}).items()}
        reasons = sorted(set(reasons) | set(details), key=_ORDER.__getitem__)
        for r in reasons:
            details.setdefault(r, r.value)
        ok = not reasons
        if "ok" in data and bool(data["ok"]) != ok:
            raise ValueError("ok must be True exactly when there are no reasons")
        return {"ok": ok, "reasons": reasons, "details": {r: details[r] for r in reasons}}

    @classmethod
    def from_findings(cls, findings: dict[Reason, list[str]]) -> RiskDecision:
        return cls(ok=not findings, reasons=list(findings), details={r: "; ".join(dict.fromkeys(t)) for r, t in findings.items()})

    def summary(self) -> str:
        """One line: ``OK`` or ``REJECT CODE1 (detail) | CODE2 (detail)``."""
        if self.ok:
            return "OK"
        return "REJECT " + " | ".join(f"{r.value} ({self.details[r]})" for r in self.reasons)
