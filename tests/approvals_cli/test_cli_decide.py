"""``main.py approve ID [--half]`` / ``reject ID``: the same claim as a Telegram press, signed
``cli:<$USER>``, audited; one line out; exit 2 (one line on stderr) when nothing was decided."""

from __future__ import annotations

import pytest

from core.approvals.claims import read_card
from core.approvals.decide import decide_signal
from core.bus.events import ApprovalEvent, AuditEvent, ReportEvent
from tests.approvals_cli.conftest import USER, one_line, open_report, open_signal, stream

BY = f"cli:{USER}"


@pytest.mark.parametrize(("argv", "decision", "qty", "said"), [
    (("approve",), "approved", 4, "approved signal SIGA: qty 4"),
    (("approve", "--half"), "approved", 2, "approved signal SIGA: qty 2 (half size)"),
    (("reject",), "rejected", 0, "rejected signal SIGA"),
])
async def test_a_signal_is_decided_through_the_claim(nsbus, cli, argv, decision, qty, said) -> None:
    await open_signal(nsbus, "SIGA")
    code, out, err = await cli(argv[0], "SIGA", *argv[1:])
    assert (code, out.strip(), err) == (0, said, "")
    [ev] = [e for e in await stream(nsbus, "approvals") if isinstance(e, ApprovalEvent)]
    assert (ev.signal.id, ev.decision, ev.qty, ev.decided_by) == ("SIGA", decision, qty, BY)
    assert ev.correlation_id == "corr-SIGA" and ev.premium_at_risk == 860.0
    card = await read_card(nsbus.redis, nsbus, "sig:SIGA")
    assert card is not None and (card["state"], card["decided_by"]) == (decision, BY)
    [audit] = [e for e in await stream(nsbus, "audit") if isinstance(e, AuditEvent)]
    name = "reject" if decision == "rejected" else ("half" if "--half" in argv else "approve")
    assert (audit.actor, audit.action) == (BY, f"cli.{name}.result")
    assert audit.detail == {"kind": "signal", "id": "SIGA", "result": "ok", "state": decision}


async def test_half_of_one_contract_is_one(nsbus, cli) -> None:
    await open_signal(nsbus, "SIGONE", qty=1)
    code, out, _ = await cli("approve", "SIGONE", "--half")
    assert code == 0 and out.strip() == "approved signal SIGONE: qty 1 (half size)"


@pytest.mark.parametrize("ident", ["rep-9", "rep:rep-9"])
async def test_a_report_id_decides_the_report(nsbus, cli, ident) -> None:
    await open_report(nsbus, "rep-9")
    code, out, _ = await cli("approve", ident)
    assert code == 0 and out.strip() == "approved report rep-9"
    [ev] = [e for e in await stream(nsbus, "reports") if isinstance(e, ReportEvent)]
    assert (ev.report_id, ev.status, ev.by) == ("rep-9", "approved", BY)
    assert not [e for e in await stream(nsbus, "approvals") if isinstance(e, ApprovalEvent)]


async def test_half_is_refused_for_a_report(nsbus, cli) -> None:
    await open_report(nsbus, "rep-h")
    code, _, err = await cli("approve", "rep-h", "--half")
    assert code == 2 and "--half is for signals" in one_line(err)
    assert (await read_card(nsbus.redis, nsbus, "rep:rep-h"))["state"] == "pending"


async def test_unknown_id_is_exit_2_one_line(nsbus, cli) -> None:
    code, out, err = await cli("approve", "NOPE")
    assert code == 2 and out == ""
    assert one_line(err) == "error: unknown id NOPE: no signal or report card under it"
    [audit] = [e for e in await stream(nsbus, "audit") if isinstance(e, AuditEvent)]
    assert audit.detail["result"] == "unknown"


async def test_expired_is_exit_2_one_line_and_changes_nothing(nsbus, cli) -> None:
    await open_signal(nsbus, "SIGX", ttl_ms=-1)
    code, _, err = await cli("approve", "SIGX")
    assert code == 2 and one_line(err) == "error: signal SIGX expired: nothing decided"
    assert (await read_card(nsbus.redis, nsbus, "sig:SIGX"))["state"] == "pending"  # the sweep closes it
    assert not [e for e in await stream(nsbus, "approvals") if isinstance(e, ApprovalEvent)]
    assert (await decide_signal(nsbus, "SIGX", "expired", "timeout")).ok
    code, _, err = await cli("reject", "SIGX")
    assert code == 2 and one_line(err) == "error: signal SIGX expired: nothing decided"


async def test_already_decided_is_exit_2_and_names_who(nsbus, cli) -> None:
    await open_signal(nsbus, "SIGB")
    assert (await decide_signal(nsbus, "SIGB", "approved", "tg:1001")).ok
    code, _, err = await cli("reject", "SIGB")
    assert code == 2
    assert one_line(err) == "error: signal SIGB already decided by tg:1001 (approved): nothing changed"
    card = await read_card(nsbus.redis, nsbus, "sig:SIGB")
    assert (card["state"], card["decided_by"]) == ("approved", "tg:1001")
    assert len([e for e in await stream(nsbus, "approvals") if isinstance(e, ApprovalEvent)]) == 1


async def test_an_invalid_card_is_not_approved(nsbus, cli) -> None:
    from core.approvals.claims import open_card

    tx = nsbus.tx()
    open_card(tx, "sig:SIGBAD", "signal", nsbus.clock.ms() + 60_000, {"signal": {"id": "SIGBAD", "qty": -5}})
    await tx.commit()
    code, _, err = await cli("approve", "SIGBAD")
    assert code == 2 and "holds invalid values" in one_line(err) and "closed as rejected" in err
    assert not [e for e in await stream(nsbus, "approvals") if isinstance(e, ApprovalEvent)]
    assert (await read_card(nsbus.redis, nsbus, "sig:SIGBAD"))["decided_by"] == "validation"
