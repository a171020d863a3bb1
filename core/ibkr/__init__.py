"""Interactive Brokers (TWS / IB Gateway) through ``ib_async``.

- ``connection``  - :class:`IbConnection`: one API client per process role (market, execution,
  check) with its own client id; connects, supervises (reconnect with backoff, 1100/1101/1102,
  2103/2104, 326, 10197), paces messages, and writes its state to Redis and the bus; its parts:
  ``connection_supervisor`` (reconnect), ``connection_notices`` (IB codes), ``connection_state``
  (the Redis state), ``ib_codes`` (the code table).
- ``contracts``   - OptionContract <-> ib_async contracts, the qualified-contract cache and
  run-time chain discovery (``reqSecDefOptParams``).
- ``market_data`` - :class:`IbkrMarketSource`, the ``MarketSource`` of ``market.source: ibkr``
  (quotes, chains within the line budget, depth rotation, watched contracts, prints); its parts:
  ``market_state``, ``market_lines`` (the line budget), ``market_discovery``, ``market_ticks``,
  ``market_reads``.
- ``check``       - ``python main.py ibkr check``: one read-only connection, what the account holds.
- ``broker``, ``orders``, ``order_store``, ``reconcile`` - the execution side (the IBKR broker;
  ``broker_base``, ``broker_orders``, ``broker_status``, ``broker_fills`` are its parts).
"""
