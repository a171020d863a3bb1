"""Scheduled reports: pre-market 08:30, intraday 13:00, close 16:10 New York, per tier.

- :mod:`reports.data`       ``gather(redis, keys, settings, calendar, kind, now, tails=None) -> ReportData``
                            (only bus streams and state hashes; ``ReportData`` is a pure model)
- :mod:`reports.charts`     Plotly figure dicts and HTML fragments with fixed div ids;
                            ``plotly_script(mode)`` loads plotly.js once per page
- :mod:`reports.render`     ``build_view(data, tier)`` (redaction), ``render_page`` / ``render_all``,
                            ``write_pages``, ``summary_text`` (free-tier facts only)
- :mod:`reports.commentary` ``Commentator``: the overseer narrator with deterministic fallbacks
- :mod:`reports.service`    ``ReportService``: the schedule, ``/report KIND``, ReportEvent ``built``
"""
