"""Split an HTML-formatted message into parts Telegram accepts (at most ``limit`` characters).

Splits happen on line boundaries; a single line longer than a part is cut at a space (never
inside a tag or an entity such as ``&amp;``). Tags open at a cut (``<b>``, ``<pre>``...) are
closed at the end of the part and re-opened at the start of the next, so every part is valid
markup on its own.
"""

from __future__ import annotations

import re

_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)([^<>]*)>")
_SELF_CLOSING = frozenset({"br"})


def _advance(stack: list[tuple[str, str]], text: str) -> list[tuple[str, str]]:
    """The open-tag stack after ``text``: [(name, opening tag as written)]."""
    out = list(stack)
    for m in _TAG.finditer(text):
        closing, name = m.group(1) == "/", m.group(2).lower()
        if name in _SELF_CLOSING or m.group(3).rstrip().endswith("/"):
            continue
        if closing:
            for i in range(len(out) - 1, -1, -1):
                if out[i][0] == name:
                    del out[i:]
                    break
        else:
            out.append((name, m.group(0)))
    return out


def _opening(stack: list[tuple[str, str]]) -> str:
    return "".join(tag for _, tag in stack)


def _closing(stack: list[tuple[str, str]]) -> str:
    return "".join(f"</{name}>" for name, _ in reversed(stack))


def _safe_cut(line: str, max_len: int) -> int:
    """Where to cut ``line`` so the head is <= max_len and no tag / entity is broken."""
    cut = max_len
    lt, gt = line.rfind("<", 0, cut), line.rfind(">", 0, cut)
    if lt > gt:  # inside a tag
        cut = lt
    amp = line.rfind("&", 0, cut)
    if amp >= 0 and ";" not in line[amp:cut] and amp > cut - 10:  # inside an entity
        cut = amp
    space = line.rfind(" ", 0, cut)
    if space > cut // 2:
        cut = space + 1
    return max(1, cut)


def _pieces(line: str, max_len: int) -> list[str]:
    out = []
    while len(line) > max_len:
        cut = _safe_cut(line, max_len)
        out.append(line[:cut])
        line = line[cut:]
    out.append(line)
    return out


def split_html(text: str, limit: int = 4096) -> list[str]:
    if len(text) <= limit:
        return [text]
    reserve = 256  # room for re-opened / closed tags around a cut
    # (separator before the piece, piece): "\n" between lines, "" inside a line cut in pieces
    pieces: list[tuple[str, str]] = []
    for line in text.split("\n"):
        for i, piece in enumerate(_pieces(line, max(64, limit - reserve))):
            pieces.append(("" if i else "\n", piece))
    parts: list[str] = []
    stack: list[tuple[str, str]] = []
    head = _opening(stack)
    body = ""
    for sep, piece in pieces:
        after = _advance(stack, piece)
        joined = body + sep + piece if body else piece
        if body and len(head) + len(joined) + len(_closing(after)) > limit:
            parts.append(head + body + _closing(stack))
            head, joined = _opening(stack), piece
        body = joined
        stack = after
    if body:
        parts.append(head + body + _closing(stack))
    return [p for p in parts if _visible(p).strip()]


def _visible(part: str) -> str:
    return _TAG.sub("", part)
