"""Prometheus metrics (exposed on ``metrics.port`` in ``run`` mode)."""

from __future__ import annotations

import errno

from prometheus_client import Counter, Gauge, Histogram, start_http_server

HANDLED = Counter("quanticity_events_handled_total", "Events handled", ["service"])
ERRORS = Counter("quanticity_handler_errors_total", "Handler failures", ["service"])
REJECTED = Counter("quanticity_rejections_total", "Rejected inputs (bad data, refused signals)",
                   ["service", "reason"])
LATENCY = Histogram("quanticity_handle_seconds", "Event handling latency", ["service"],
                    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0))
TIMER_RUNS = Counter("quanticity_timer_runs_total", "Timer ticks run", ["service"])
# the live runner's loops (loop = start | consume | timer | wake | heartbeat): every error a loop
# survived, and the wall time of its last completed iteration (alert on time() - this > budget)
LOOP_ERRORS = Counter("quanticity_loop_errors_total", "Errors a runner loop survived (then backed off)",
                      ["service", "loop"])
LOOP_LAST_DONE = Gauge("quanticity_loop_last_completed_timestamp_seconds",
                       "Wall time of the last completed iteration of a runner loop", ["service", "loop"])


class MetricsUnavailable(Exception):
    """The metrics endpoint could not be started (one-line message; the CLI exits 2)."""


def serve(port: int) -> None:
    """Expose /metrics on 127.0.0.1:``port``; MetricsUnavailable when the port cannot be bound."""
    try:
        start_http_server(port, addr="127.0.0.1")
    except OSError as exc:
        why = ("is already in use (another `run` still going?)" if exc.errno == errno.EADDRINUSE
               else f"cannot be opened ({exc.strerror or exc})")
        raise MetricsUnavailable(f"metrics port {port} on 127.0.0.1 {why}; choose another with "
                                 f"metrics.port in --config FILE or QUANT_METRICS__PORT=<port>, "
                                 f"or turn it off with metrics.enabled: false") from None
