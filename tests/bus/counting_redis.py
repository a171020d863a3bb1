"""A real Redis client that records every command it sends (name, in order) and each round trip.

Not a mock: the commands go to the real server over a real socket; the connection only notes
what it packs. ``Counted.names`` is the list of command names (a MULTI/EXEC pipeline's
commands included), ``Counted.round_trips`` the number of sends (one per command or pipeline).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection


@dataclass
class Counted:
    names: list[str] = field(default_factory=list)
    round_trips: int = 0

    def count(self, name: str) -> int:
        return Counter(self.names)[name.upper()]

    def reset(self) -> None:
        self.names.clear()
        self.round_trips = 0


class CountingConnection(Connection):
    def __init__(self, *args: Any, counted: Counted, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counted = counted

    def pack_commands(self, commands: Any) -> list[bytes]:
        cmds = list(commands)
        self.counted.round_trips += 1
        self.counted.names.extend(str(c[0]).upper() for c in cmds)
        return super().pack_commands(cmds)

    async def send_command(self, *args: Any, **kwargs: Any) -> None:
        self.counted.round_trips += 1
        self.counted.names.append(str(args[0]).upper())
        await super().send_command(*args, **kwargs)


def counting_client(url: str, counted: Counted) -> aioredis.Redis:
    pool = aioredis.ConnectionPool.from_url(url, connection_class=CountingConnection, counted=counted,
                                            decode_responses=True)
    return aioredis.Redis(connection_pool=pool)
