"""Publishers ("sinks"): Discord, X, Reddit and the local outbox behind one interface."""

from bot.publishers.base import Payload, PostMeta, PostResult, PublishError, Sink, ThreadRef, same_text
from bot.publishers.factory import build_sinks
from bot.publishers.outbox import OUTBOX_KEYS, OutboxSink

__all__ = [
           "OUTBOX_KEYS",
           "OutboxSink",
           "Payload",
           "PostMeta",
           "PostResult",
           "PublishError",
           "Sink",
           "ThreadRef",
           "build_sinks",
           "same_text",
]
