"""The IB error / notice codes :class:`~core.ibkr.connection.IbConnection` reacts to, and the
market-data type numbers.

Codes handled one by one in :mod:`core.ibkr.connection_notices`: 326 (client id in use),
1300 (TWS reset its API port), 1101 / 1102 (TWS restored its IB link, data lost / kept),
2103 / 2104 (market data farm broken / OK), 10197 (competing live session), 10167 (delayed data
shown), 101 (too many tickers). The groups below are the codes that share one reaction.
"""

from __future__ import annotations

MD_TYPES = {"live": 1, "frozen": 2, "delayed": 3, "delayed_frozen": 4}
MD_NAMES = {1: "live", 2: "frozen", 3: "delayed", 4: "delayed-frozen"}
TWS_LOST = frozenset({1100, 2110})  # TWS <-> IB broken, socket up
PACING = frozenset({100, 420})
NOT_SUBSCRIBED = frozenset({354, 10168})
