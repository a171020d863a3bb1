"""Publishers ("sinks"): Discord, X, Reddit and the local outbox behind one interface."""

from bot.publishers.base import PostMeta, PostResult, PublishError, Sink, ThreadRef, ref_tag
from bot.publishers.factory import build_sinks
from bot.publishers.outbox import OUTBOX_KEYS, OutboxSink

__all__ = [
           "OUTBOX_KEYS",
           "OutboxSink",
           "PostMeta",
           "PostResult",
           "PublishError",
           "Sink",
           "ThreadRef",
           "build_sinks",
           "ref_tag",
]
