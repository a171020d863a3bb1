"""Shared Claude access for the overseer: :class:`AiGateway` (forced tool use, deadline,
budget, cache, audit) and its result type."""

from overseer.ai.budget import Budget, RedisBudget
from overseer.ai.cache import Cache, RedisCache
from overseer.ai.gateway import AiGateway, AiResult, BadOutput, ToolSpec, classify, parse_tool_answer

__all__ = [
    "AiGateway",
    "AiResult",
    "BadOutput",
    "Budget",
    "Cache",
    "RedisBudget",
    "RedisCache",
    "ToolSpec",
    "classify",
    "parse_tool_answer",
]
