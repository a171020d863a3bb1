"""Signal review: hard rules first, then Claude; the result can only be stricter than the rules.

Design choice for the premium trade explanation: it is a field (``explanation``) of the same
forced tool call as the review, not a second call. One call halves latency and budget, keeps
the whole review inside one ``overseer.timeout_s`` deadline, and the model writes it with the
same context it judged. It is still guarded like any narrative (numbers must come from the
input data, <= 3 sentences, no links/mentions) and replaced by the template otherwise.
"""

from overseer.review.models import REVIEW_TOOL, AiReview, stricter
from overseer.review.reviewer import ReviewContext, Reviewer, ReviewOutcome
from overseer.review.rules import hard_rules, overseer_checks
from overseer.review.service import ReviewService

__all__ = [
    "REVIEW_TOOL",
    "AiReview",
    "ReviewContext",
    "ReviewOutcome",
    "ReviewService",
    "Reviewer",
    "hard_rules",
    "overseer_checks",
    "stricter",
]
