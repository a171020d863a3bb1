"""Narratives for reports, subscribers and the admin, with deterministic fallbacks.

Public API (see :mod:`overseer.narratives.narrator`)::

    narrator = Narrator(settings, secrets)            # or Narrator.from_context(ctx) in a service
    await narrator.explain_trade(signal, snapshot=None, account_value=None) -> str   # <= 3 sentences
    await narrator.commentary(section, data) -> str                                   # <= 4 sentences
    await narrator.daily_summary(data) -> str                                         # <= 5 sentences
    await narrator.explain_alert(code=..., severity=..., subject=..., message=..., facts=...) -> str
    await narrator.narrate_commentary(section, data) -> Narrative(text, source, ai)   # with provenance
    await narrator.aclose()
"""

from overseer.narratives.guard import check_text, numbers_ok
from overseer.narratives.narrator import Narrative, Narrator, template_trade_explanation, trade_facts

__all__ = ["Narrative", "Narrator", "check_text", "numbers_ok", "template_trade_explanation", "trade_facts"]
