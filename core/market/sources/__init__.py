"""Market sources (``core.market.source.MarketSource``) and the choice between them.

``market.source``: ``simulator`` (demo; built in) or ``ibkr`` (``core.ibkr.market_data``,
imported only when chosen). ``vendor`` sources plug in here as their adapters land.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.config.loader import ConfigError
from core.market.source import MarketSource

if TYPE_CHECKING:
    from core.runtime.service import Context


def make_source(ctx: Context) -> MarketSource:
    kind = ctx.settings.market.source
    if kind == "simulator":
        from core.market.sources.simulator import SimulatorSource

        return SimulatorSource(ctx)
    if kind == "ibkr":
        from core.ibkr.market_data import IbkrMarketSource

        return IbkrMarketSource.from_context(ctx)
    raise ConfigError(f"market.source {kind!r}: no adapter in this build (use 'simulator' or 'ibkr')")
