"""Outside text made safe for a subscriber post (shared by the message and report views).

``clean``: one line, no control characters or line breaks, ``@`` mentions defused, capped.
``md``: Discord / Reddit markdown escaped (templates apply it with ``|md``).
"""

from __future__ import annotations

import re
from typing import Any

_CTRL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_WS = re.compile(r"\s+")
_MD = re.compile(r"([\\*_~`|>#\[\]()<^])")


def clean(value: Any, limit: int = 300) -> str:
    """Outside text as one safe line: no control chars / line breaks, defused @mentions, capped."""
    s = _CTRL.sub(" ", str(value if value is not None else ""))
    s = _WS.sub(" ", s).strip()
    s = s.replace("@", "@\u200b")
    if len(s) > limit:
        s = s[: max(0, limit - 1)].rstrip() + "…"
    return s


def md(value: Any) -> str:
    """Escape Discord / Reddit markdown in an already-cleaned string."""
    return _MD.sub(r"\\\1", str(value))
