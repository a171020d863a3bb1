"""Signal strategies: analytics snapshots + the latest chain -> long single-leg option ideas.

- :mod:`core.signals.base`        StrategyContext, Candidate, Strategy base, Score
- :mod:`core.signals.history`     rolling per-symbol history of analytics values
- :mod:`core.signals.selection`   expiry / strike choice with hysteresis
- :mod:`core.signals.pricing`     tick rounding, limit / stop / targets
- :mod:`core.signals.strategies`  gamma_0dte, overnight_1dte, moc_imbalance, directional_swing
- :mod:`core.signals.dedupe`      fingerprint + one Lua script: idempotency, cooldown, enqueue
- :mod:`core.signals.service`     SignalService (consumer group ``signals``, stream ``analytics``)
"""
