"""Order execution: broker interface, safety guard, paper broker.

Pure state machines with ``now`` passed in; a bus service wraps them.
"""

from core.execution.broker import Broker, BrokerEvent, BrokerEventKind, BrokerPosition, QuoteSnapshot
from core.execution.guard import OrderRejected, check_instrument, check_order
from core.execution.orders import (
    Fill,
    OrderPurpose,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    TimeInForce,
    entry_order_from_signal,
)
from core.execution.paper import PaperBroker, PaperBrokerState, PaperConfig

__all__ = [
    "Broker", "BrokerEvent", "BrokerEventKind", "BrokerPosition", "Fill", "OrderPurpose", "OrderRejected",
    "OrderRequest", "OrderState", "OrderStatus", "OrderType", "PaperBroker", "PaperBrokerState",
    "PaperConfig", "QuoteSnapshot", "TimeInForce", "check_instrument", "check_order",
    "entry_order_from_signal",
]
