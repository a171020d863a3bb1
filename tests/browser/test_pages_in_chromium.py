"""The premium close report and outbox.html opened in headless Chromium at 1280 px, from local files
with the network fenced off: every plotly chart draws (its ``.main-svg`` and at least one trace),
the console stays free of errors, the page asks for nothing but its own file, and nothing is wider
than the window (``scrollWidth <= clientWidth``). Full-page screenshots are kept under
``var/test-artifacts/browser/`` (git-ignored; the paths are printed at the end of the run).

Chromium is Debian's ``chromium`` (``scripts/test.sh`` installs it when it can); without it these
tests are skipped and the run's summary says so."""

from __future__ import annotations

from datetime import time
from pathlib import Path

from bot.distribution import render_outbox_html
from tests.browser._cdp import Browser, Page
from tests.reports._day import reports_stream

WIDTH = 1280
OUTBOX = Path(__file__).with_name("outbox.jsonl")
CHARTS_DRAWN = """(() => {
  const divs = [...document.querySelectorAll('.plotly-graph-div')];
  return divs.length > 0 && divs.every(d => d.querySelector('svg.main-svg'));
})()"""
CHART_STATE = """[...document.querySelectorAll('.plotly-graph-div')].map(d => ({
  id: d.id,
  svg: d.querySelectorAll('svg.main-svg').length,
  traces: d.querySelectorAll('g.trace').length,
  width: Math.round(d.getBoundingClientRect().width),
  height: Math.round(d.getBoundingClientRect().height),
}))"""
OVERFLOW = """(() => {
  const e = document.documentElement;
  const wide = [...document.querySelectorAll('body *')]
    .filter(n => n.getBoundingClientRect().right > e.clientWidth + 0.5)
    .slice(0, 5).map(n => n.tagName.toLowerCase() + (n.id ? '#' + n.id : '') + (n.className && n.className.baseVal === undefined ? '.' + n.className : ''));
  return {scrollWidth: e.scrollWidth, clientWidth: e.clientWidth, widest: wide};
})()"""


async def _check(page: Page, own_file: Path, *, charts: int) -> dict:
    if charts:
        drawn = await page.wait_for(CHARTS_DRAWN, 20)
        assert drawn, {"charts": await page.evaluate(CHART_STATE), "errors": page.log.errors}
    state = await page.evaluate(CHART_STATE)
    assert len(state) == charts, state
    for c in state:
        assert c["svg"] >= 1 and c["traces"] >= 1 and c["width"] > 300 and c["height"] > 200, c
    layout = await page.evaluate(OVERFLOW)
    assert layout["scrollWidth"] <= layout["clientWidth"] == WIDTH, layout
    assert page.log.errors == [], page.log.errors
    assert page.log.requests == [own_file.resolve().as_uri()], page.log.requests
    return layout


async def test_close_report_and_outbox_render_in_chromium(chromium, day, make_service, bus, tmp_path, artifact):
    svc = make_service()  # default settings: plotly.js inline
    await day.run_until(time(16, 10))
    tx = bus.tx()
    await svc.build("close", bus.clock.now(), tx, by="test")
    await tx.commit()
    report = Path((await reports_stream(bus))[-1].paths["premium"])
    charts = report.read_text(encoding="utf-8").count('class="plotly-graph-div"')
    assert charts >= 6  # price paths, three GEX maps, cumulative P&L, P&L by strategy
    outbox = Path(render_outbox_html(OUTBOX, tmp_path / "outbox.html"))

    async with Browser(chromium) as browser:
        page = await browser.open(report, WIDTH)
        await _check(page, report, charts=charts)
        # the modebar's "download as PNG" works under the page's Content-Security-Policy
        png = await page.evaluate("Plotly.toImage(document.querySelector('.plotly-graph-div'), "
                                  "{format: 'png', width: 640, height: 360}).then(u => u.slice(0, 22))")
        assert png == "data:image/png;base64," and page.log.errors == [], page.log.errors
        await page.screenshot(artifact("close-premium.png"))
        await page.close()

        page = await browser.open(outbox, WIDTH)
        await _check(page, outbox, charts=0)
        assert await page.evaluate("document.querySelectorAll('.msg').length") == 48
        await page.screenshot(artifact("outbox.png"))
        await page.close()
