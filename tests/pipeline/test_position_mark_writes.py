"""A repeated option quote (same mid) no longer rewrites the position record and the account hash
(two commands a mark, ~18% of the demo's marks): only ``last_mark_ts`` / ``updated_ms`` would have
moved, and nothing reads them. A mark that changes anything is still stored at once."""

from __future__ import annotations

import json

from tests.pipeline.conftest import stream
from tests.pipeline.test_execution_positions import _desk


async def _records(bus, pid):
    raw = await bus.redis.hget(bus.keys.hash("positions"), pid)
    return json.loads(raw)["position"], await bus.redis.hgetall(bus.keys.hash("account"))


async def test_the_same_mark_again_writes_nothing_a_new_mark_writes_at_once(sim_bus, ctx_for):
    desk = await _desk(sim_bus, ctx_for)
    appr = desk.approval()
    pid = appr.correlation_id
    await desk.send(appr)
    await desk.send(desk.quote(1.00, 1.04), 10)
    await desk.send(desk.quote(0.98, 1.02), 10)  # filled at 1.02
    await desk.send(desk.quote(1.10, 1.14), 15)  # mark 1.12
    pos1, acct1 = await _records(sim_bus, pid)
    assert pos1["last_mark"] == 1.12 and float(acct1["unrealized"]) == round((1.12 - 1.02) * 4 * 100, 2)

    await desk.send(desk.quote(1.10, 1.14), 15)  # the same quote 15 s later
    await desk.send(desk.quote(1.11, 1.13), 15)  # another quote, the same mid
    assert await _records(sim_bus, pid) == (pos1, acct1)  # not rewritten (last_mark_ts is the first 1.12's)

    await desk.send(desk.quote(1.12, 1.16), 15)  # mark 1.14: stored at once, with its time
    pos2, acct2 = await _records(sim_bus, pid)
    assert pos2["last_mark"] == 1.14 and pos2["last_mark_ts"] != pos1["last_mark_ts"]
    assert float(acct2["unrealized"]) == round((1.14 - 1.02) * 4 * 100, 2)
    assert int(acct2["updated_ms"]) == sim_bus.clock.ms()

    # the cached copy the service keeps stays the stored one: a restart reads the same state
    svc = desk.runner.services[1]
    assert svc._cache[pid].model_dump(mode="json") == pos2


async def test_the_same_mark_still_acts_when_a_rule_fires(sim_bus, ctx_for):
    """Unchanged mark but a new session date (flat time reached): the exit still goes out."""
    desk = await _desk(sim_bus, ctx_for)
    appr = desk.approval()
    await desk.send(appr)
    await desk.send(desk.quote(1.00, 1.04), 10)
    await desk.send(desk.quote(0.98, 1.02), 10)
    await desk.send(desk.quote(1.10, 1.14), 15)
    await desk.send(desk.quote(1.10, 1.14), 6 * 3600)  # 16:00+: 0DTE flat time, same mid
    reqs = await stream(sim_bus, "order_requests")
    assert [(r.reason, r.order_type) for r in reqs] == [("flat_eod", "MKT")]
