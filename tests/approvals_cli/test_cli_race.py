"""Safety line: the CLI and a Telegram press on one card at the same moment: exactly one decides.

The CLI side is the command's implementation (``core.approvals.cli.decide`` on its own Redis
connection, signed ``cli:ann``); the Telegram side is what the button handler calls
(``decide_signal`` signed ``tg:1001``) on another connection. Every round: one winner, the loser
says "already decided" by the winner, the card holds the winner's decision, one outcome event.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from core.approvals.claims import read_card
from core.approvals.cli import decide, operator_bus
from core.approvals.decide import decide_signal
from core.bus.bus import Bus
from core.bus.events import ApprovalEvent
from core.bus.ids import IdFactory
from core.clock.clock import LiveClock
from tests.approvals_cli.conftest import USER, open_signal, stream

ROUNDS = 60
CLI_BY = f"cli:{USER}"


@pytest.fixture
async def bot_bus(redis_url, nsbus):
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield Bus(client, nsbus.keys, LiveClock(), IdFactory(seed=99), source="telegram")
    await client.aclose()


@pytest.fixture
async def cli_bus(redis_url, nsbus):
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield await operator_bus(Bus(client, nsbus.keys, LiveClock(), source="cli"))
    await client.aclose()


async def test_cli_and_telegram_press_race_one_winner_every_round(nsbus, bot_bus, cli_bus) -> None:
    decisions = [("approved", "rejected"), ("rejected", "approved"), ("approved", "approved")]
    for i in range(ROUNDS):
        sid = f"SIGRACE{i:03d}"
        await open_signal(nsbus, sid)
        cli_d, tg_d = decisions[i % len(decisions)]
        cli_call = decide(cli_bus, sid, cli_d, CLI_BY, half=i % 2 == 0)
        tg_call = decide_signal(bot_bus, sid, tg_d, "tg:1001")
        if i % 2:  # either side first in the gather
            tg_res, outcome = await asyncio.gather(tg_call, cli_call)
        else:
            outcome, tg_res = await asyncio.gather(cli_call, tg_call)
        assert outcome.decided != tg_res.ok, (i, outcome, tg_res)
        card = await read_card(nsbus.redis, nsbus, f"sig:{sid}")
        assert card is not None
        if outcome.decided:
            assert tg_res.status == "already" and tg_res.decided_by == CLI_BY, tg_res
            assert (card["state"], card["decided_by"]) == (cli_d, CLI_BY)
        else:
            assert "already decided by tg:1001" in outcome.line, outcome
            assert (card["state"], card["decided_by"]) == (tg_d, "tg:1001")
    per_signal: dict[str, int] = {}
    for e in await stream(nsbus, "approvals"):
        if isinstance(e, ApprovalEvent):
            per_signal[e.signal.id] = per_signal.get(e.signal.id, 0) + 1
    assert len(per_signal) == ROUNDS and set(per_signal.values()) == {1}, per_signal


async def test_the_command_racing_a_press_through_main(nsbus, bot_bus, cli) -> None:
    """The whole command (main.main in a worker thread, its own connection and event loop) against a
    press: one winner; the loser's words match (exit 2 "already decided" / the press sees cli:ann)."""
    for i in range(8):
        sid = f"SIGMAIN{i}"
        await open_signal(nsbus, sid)
        (code, out, err), tg_res = await asyncio.gather(cli("approve", sid),
                                                         decide_signal(bot_bus, sid, "rejected", "tg:1001"))
        assert (code == 0) != tg_res.ok, (code, out, err, tg_res)
        if code == 0:
            assert out.strip() == f"approved signal {sid}: qty 4" and tg_res.decided_by == CLI_BY
        else:
            assert code == 2 and err.strip() == (f"error: signal {sid} already decided by tg:1001 (rejected): "
                                                 f"nothing changed")
    approvals = [e for e in await stream(nsbus, "approvals") if isinstance(e, ApprovalEvent)]
    assert sorted(e.signal.id for e in approvals) == [f"SIGMAIN{i}" for i in range(8)]
