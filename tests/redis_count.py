"""Count the Redis commands and client round trips a piece of code makes (for the speed tests).

Wraps the real redis-py asyncio client at class level while the context is open: every command
(direct or queued on a pipeline) is counted by name, and every ``send_packed_command`` (one per
single command or per whole pipeline) as a round trip — the same figure ``bench/demo.py`` reports.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio.client as aclient
import redis.asyncio.connection as aconn


@dataclass
class RedisCount:
    commands: Counter[str] = field(default_factory=Counter)
    round_trips: int = 0
    by_key: Counter[tuple[str, str]] = field(default_factory=Counter)  # (command, first argument)

    @property
    def total(self) -> int:
        return sum(self.commands.values())


@contextlib.contextmanager
def count_redis() -> Iterator[RedisCount]:
    seen = RedisCount()
    orig_direct, orig_queued = aclient.Redis.execute_command, aclient.Pipeline.execute_command
    orig_send = aconn.AbstractConnection.send_packed_command

    def note(args: tuple[Any, ...]) -> None:
        name = str(args[0]).lower()
        seen.commands[name] += 1
        seen.by_key[(name, str(args[1]) if len(args) > 1 else "")] += 1

    def direct(self: Any, *args: Any, **kw: Any) -> Any:
        note(args)
        return orig_direct(self, *args, **kw)

    def queued(self: Any, *args: Any, **kw: Any) -> Any:
        note(args)
        return orig_queued(self, *args, **kw)

    async def send(conn: Any, command: Any, check_health: bool = True) -> None:
        seen.round_trips += 1
        await orig_send(conn, command, check_health)

    aclient.Redis.execute_command = direct  # type: ignore[method-assign]
    aclient.Pipeline.execute_command = queued  # type: ignore[method-assign]
    aconn.AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        aclient.Redis.execute_command = orig_direct  # type: ignore[method-assign]
        aclient.Pipeline.execute_command = orig_queued  # type: ignore[method-assign]
        aconn.AbstractConnection.send_packed_command = orig_send  # type: ignore[method-assign]
