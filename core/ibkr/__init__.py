"""Interactive Brokers (TWS / IB Gateway) through ``ib_async``.

- ``connection``  - :class:`IbConnection`: one API client per process role (market, execution,
  check) with its own client id; connects, supervises (reconnect with backoff, 1100/1101/1102,
  2103/2104, 326, 10197), paces messages, and writes its state to Redis and the bus.
- ``contracts``   - OptionContract <-> ib_async contracts, the qualified-contract cache and
  run-time chain discovery (``reqSecDefOptParams``).
- ``market_data`` - :class:`IbkrMarketSource`, the ``MarketSource`` of ``market.source: ibkr``
  (quotes, chains within the line budget, depth rotation, watched contracts, prints).
- ``check``       - ``python main.py ibkr check``: one read-only connection, what the account holds.
- ``broker``, ``orders``, ``order_store``, ``reconcile`` - the execution side (the IBKR broker).
"""
