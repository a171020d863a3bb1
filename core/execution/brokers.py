"""Which broker the execution service runs, chosen by ``execution.broker``.

``paper``: :class:`core.execution.paper.PaperBroker`, filling against the option quotes it is
fed (the simulator's in ``demo``, IBKR's in ``dry-run``). ``ibkr``: the Interactive Brokers
adapter (``core.ibkr``), imported only when chosen. Both use the shared order policy
(``core.execution.policy``) built from the same ``execution:`` settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.execution.broker import Broker
from core.execution.policy import PolicyConfig

if TYPE_CHECKING:
    from core.runtime.service import Context


def policy_config(ctx: Context) -> PolicyConfig:
    e = ctx.settings.execution
    return PolicyConfig(commission_per_contract=e.commission_per_contract, reprice_after_s=e.reprice_after_s,
                        reprice_step_pct_of_spread=e.reprice_step_pct_of_spread, max_reprices=e.max_reprices,
                        order_timeout_s=e.order_timeout_s, cancel_spread_pct_of_mid=e.cancel_spread_pct_of_mid,
                        max_quote_age_s=ctx.settings.risk.max_quote_age_s)


def make_broker(ctx: Context) -> Broker:
    if ctx.settings.execution.broker == "ibkr":
        from core.ibkr.broker import IbkrBroker

        return IbkrBroker.from_context(ctx, policy_config(ctx))
    from core.execution.paper import PaperBroker

    return PaperBroker(policy_config(ctx))
