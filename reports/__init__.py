"""Scheduled reports: pre-market 08:30, intraday 13:00, close 16:10 New York, per tier.

- :mod:`reports.gather`     ``gather(redis, keys, settings, calendar, kind, now, tails=None) -> ReportData``
                            (only bus streams and state hashes, plus the ledger for the close report)
- :mod:`reports.model`      ``ReportData`` and its rows: a pure, JSON-able model
- :mod:`reports.streams`    reading the bus streams (one newest-first page loop; ``Tails`` for quotes/flow)
- :mod:`reports.builders`   pure functions: events read -> the model's rows and totals
- :mod:`reports.periods`    the close report's week / month to date, from the trade ledger
- :mod:`reports.values`     epoch ms, New York time labels, finite floats
- :mod:`reports.charts`     Plotly figure dicts and HTML fragments with fixed div ids;
                            ``plotly_script(mode)`` loads plotly.js once per page
- :mod:`reports.render`     ``build_view(data, tier)`` (redaction), ``render_page`` / ``render_all``,
                            ``write_pages``, ``summary_text`` (free-tier facts only)
- :mod:`reports.commentary` ``Commentator``: the overseer narrator with deterministic fallbacks
- :mod:`reports.service`    ``ReportService``: the schedule, ``/report KIND``, ReportEvent ``built``
"""
