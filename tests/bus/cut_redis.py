"""A real Redis client whose connection can drop in the middle of a pipeline.

Not a mock: the commands go to the real server over a real socket. When armed, a pipeline of
more than ``keep`` commands (MULTI counts as one) is cut: only its first ``keep`` commands are
sent, their replies are read (so the server has processed them), then the socket is closed and
``ConnectionError`` raised, as when the process dies or the network goes between writing the
outputs and the EXEC. ``after_exec=True`` sends the whole pipeline and drops the socket before
reading any reply: the server commits, the client never learns it (an ambiguous commit).
Single commands are never cut; ``fail_next("EVALSHA")`` instead drops the connection before
the next such command is sent (the server never sees it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError


@dataclass
class Cut:
    keep: int = 2
    times: int = 0  # pipelines still to cut (0 = disarmed)
    after_exec: bool = False
    cuts: int = 0  # pipelines cut so far
    fail_command: str = ""  # the next single command of this name fails before it is sent

    def fail_next(self, command: str) -> None:
        self.fail_command = command.upper()

    def arm(self, keep: int, times: int = 1, *, after_exec: bool = False) -> None:
        self.keep, self.times, self.after_exec = keep, times, after_exec


class CutConnection(Connection):
    def __init__(self, *args: Any, cut: Cut, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cut = cut
        self._cut_pending: int | None = None

    def pack_commands(self, commands: Any) -> list[bytes]:
        cmds = list(commands)
        c = self.cut
        if c.times > 0 and len(cmds) > c.keep:
            c.times -= 1
            c.cuts += 1
            if c.after_exec:
                self._cut_pending = 0
                return super().pack_commands(cmds)
            self._cut_pending = c.keep
            return super().pack_commands(cmds[:c.keep])
        return super().pack_commands(cmds)

    async def send_command(self, *args: Any, **kwargs: Any) -> None:
        if self.cut.fail_command and str(args[0]).upper() == self.cut.fail_command:
            self.cut.fail_command = ""
            self.cut.cuts += 1
            await self.disconnect()
            raise RedisConnectionError(f"injected: connection dropped before {args[0]}")
        await super().send_command(*args, **kwargs)

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        await super().send_packed_command(command, check_health)
        n, self._cut_pending = self._cut_pending, None
        if n is None:
            return
        if n == 0:  # the whole pipeline went out: make sure the server ran it, then "lose" the replies
            await self.send_packed_command(self.pack_command("PING"), check_health=False)
        for _ in range(n):
            await self.read_response()
        if n == 0:
            while (await self.read_response()) != "PONG":
                pass
        await self.disconnect()
        raise RedisConnectionError("injected: connection dropped in the middle of a pipeline")


def cut_client(url: str, cut: Cut, **kwargs: Any) -> aioredis.Redis:
    pool = aioredis.ConnectionPool.from_url(url, connection_class=CutConnection, cut=cut,
                                            decode_responses=True, **kwargs)
    return aioredis.Redis(connection_pool=pool)
