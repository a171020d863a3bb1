"""Every reference a page makes to something outside its own file.

A self-contained page may point only inside itself (``#anchor``) or at inline data (``data:``). Any
other value of a fetching attribute (``src``, ``href``, ``srcset``, ``poster``, ``action`` ...), any
CSS ``url(...)`` or ``@import`` in a ``<style>`` or ``style=""``, a ``<meta http-equiv=refresh>``
target, and any URL, ``import``/``importScripts`` in an inline script is reported — relative paths
too, since a lone attachment has nothing beside it. Visible text is not a reference (a configured
report base URL may appear as plain text), and neither is an XML namespace (``xmlns``).

The one exception is the plotly.js library itself, recognized byte for byte as the inline copy
(:func:`reports.charts.plotly_js`): its source carries URL strings for map tiles and fonts that only
geo/map traces would fetch; the browser check proves a charted page requests nothing.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from reports.charts import plotly_js

URL_ATTRS = {"src", "href", "srcset", "action", "formaction", "poster", "data", "background", "xlink:href",
             "manifest", "ping", "cite", "longdesc", "codebase", "archive", "usemap", "icon", "imagesrcset"}
CSS_URL = re.compile(r"url\(\s*(['\"]?)(.*?)\1\s*\)", re.IGNORECASE | re.DOTALL)
CSS_IMPORT = re.compile(r"@import\b", re.IGNORECASE)
SCRIPT_REF = re.compile(r"(?:https?:)?//[a-z0-9-]+(?:\.[a-z0-9-]+)+|\bimport\s*\(|\bimportScripts\b|^\s*import\s",
                        re.IGNORECASE | re.MULTILINE)
REFRESH_URL = re.compile(r"url\s*=\s*(\S+)", re.IGNORECASE)


def _inside(value: str) -> bool:
    v = value.strip()
    return v == "" or v.startswith("#") or v.lower().startswith("data:")


def _css_refs(css: str, where: str) -> list[str]:
    out = [f"{where}: url({m.group(2)})" for m in CSS_URL.finditer(css) if not _inside(m.group(2))]
    out += [f"{where}: @import" for _ in CSS_IMPORT.finditer(css)]
    return out


class _Scanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[str] = []
        self._in: str | None = None  # "style" or "script" while inside one
        self._buf: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            value = value or ""
            parts = [p.split()[0] for p in value.split(",") if p.split()] if name.endswith("srcset") else [value]
            if name in URL_ATTRS and not all(_inside(p) for p in parts):
                self.refs.append(f"<{tag} {name}={value[:120]!r}>")
            elif name == "style":
                self.refs += _css_refs(value, f"<{tag} style>")
            elif tag == "meta" and name == "content" and ("http-equiv", "refresh") in [
                    (k, (v or "").lower()) for k, v in attrs]:
                m = REFRESH_URL.search(value)
                if m and not _inside(m.group(1)):
                    self.refs.append(f"<meta refresh {m.group(1)!r}>")
        if tag in ("style", "script"):
            self._in, self._buf = tag, []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in ("style", "script"):
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in:
            self._buf.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag != self._in:
            return
        text = "".join(self._buf)
        if tag == "style":
            self.refs += _css_refs(text, "<style>")
        elif text != plotly_js():
            self.refs += [f"<script>: {m.group(0).strip()[:80]}" for m in SCRIPT_REF.finditer(text)]
        self._in = None


def external_refs(html: str) -> list[str]:
    """Every reference out of the page, as short descriptions (empty when self-contained)."""
    s = _Scanner()
    s.feed(html)
    s.close()
    return s.refs


def url_strings(html: str) -> list[str]:
    """Every ``http(s)://`` or ``//cdn`` text anywhere in the page, the plotly.js library and XML
    namespace declarations aside: by default a page has none at all, visible text included."""
    body = html.replace(plotly_js(), "")
    body = re.sub(r'xmlns(?::\w+)?="http://www\.w3\.org/[^"]*"', "", body)
    return sorted(set(re.findall(r"(?:https?:)?//cdn[^\s\"'<>)]*|https?://[^\s\"'<>)]+", body, re.IGNORECASE)))
