"""Reading the recap pages back: table rows by id, visible text, and whole-number tokens."""

from __future__ import annotations

import re
from html.parser import HTMLParser


class Rows(HTMLParser):
    """Cells (visible text) of every ``<tr id=...>`` and the text of every element with an id."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self._row: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("id"):
            self._row = str(a["id"])
            self.rows[self._row] = []
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self.rows[self._row].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def rows(html: str) -> dict[str, list[str]]:
    p = Rows()
    p.feed(html)
    return p.rows


def visible_text(html: str) -> str:
    """The page's text without markup, styles or SVG (what a reader sees as words and numbers)."""
    body = re.sub(r"<style>.*?</style>", " ", html, flags=re.DOTALL)
    body = re.sub(r"<svg.*?</svg>", " ", body, flags=re.DOTALL)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


def whole_numbers(text: str) -> set[str]:
    """Every number in the text as written ("2,726.90", "37", "2026"), split on anything else."""
    return set(re.findall(r"\d[\d,]*(?:\.\d+)?", text))
