"""What the model may answer to a signal review: :class:`AiReview`, via the forced tool
:data:`REVIEW_TOOL`. Anything else (a missing field, a value outside the enums, an extra
field, text instead of the tool call) is a schema-breaking answer -> "unavailable"."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from overseer.ai.gateway import ToolSpec

Decision = Literal["approve", "caution", "reject"]
DECISIONS: tuple[str, ...] = ("approve", "caution", "reject")
_RANK = {d: i for i, d in enumerate(DECISIONS)}


def stricter(a: str, b: str) -> str:
    """The stricter of two decisions (approve < caution < reject)."""
    return a if _RANK[a] >= _RANK[b] else b


class AiReview(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Decision
    confidence: Annotated[StrictInt, Field(ge=0, le=100)]
    concerns: Annotated[list[Annotated[str, Field(max_length=300)]], Field(max_length=8)]
    summary: Annotated[str, Field(max_length=600)]
    # The trade explanation for premium subscribers rides in the same call (see review/__init__).
    explanation: Annotated[str, Field(max_length=800)] = ""


REVIEW_TOOL = ToolSpec(
    name="submit_review",
    description=(
        "Submit the review of the trade signal in the data block. This tool is the only way to answer; "
        "the decision must be one of the enum values."
    ),
    input_schema={
        "type": "object",
        "properties": {
            "decision": {
                "type": "string",
                "enum": list(DECISIONS),
                "description": "approve: sound as proposed; caution: tradable but with material "
                "concerns; reject: should not be traded.",
            },
            "confidence": {
                "type": "integer",
                "minimum": 0,
                "maximum": 100,
                "description": "How sure you are of the decision, 0-100.",
            },
            "concerns": {
                "type": "array",
                "maxItems": 8,
                "items": {"type": "string", "maxLength": 300},
                "description": "Specific concerns for the admin, most important first (may be empty).",
            },
            "summary": {
                "type": "string",
                "maxLength": 600,
                "description": "One or two sentences for the admin explaining the decision.",
            },
            "explanation": {
                "type": "string",
                "maxLength": 800,
                "description": "At most 3 plain sentences for premium subscribers explaining the "
                "trade (what is bought, risk, exit plan, setup). Use only numbers "
                "that appear in the data; no links, no mentions.",
            },
        },
        "required": ["decision", "confidence", "concerns", "summary", "explanation"],
        "additionalProperties": False,
    },
)
