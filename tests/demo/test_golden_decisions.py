"""The demo's decisions are golden: for seed 1 on 2026-12-03 (the default demo day of the README),
the signals, verdicts, approvals, orders, fills and position events are compared, type by type,
with hashes taken from the journal before any change that was not meant to alter a decision.

Message wording, reports and delivery timing may change freely; these events may not. Their free
text (``WORDING``: the overseer's summary and explanation, the rules' concern sentences) is left out
of the hash, so a formatter change cannot pass for a decision change; every number, code, size and
price stays in. Ids are relabelled by first appearance (``id#0``, ``id#1``, ... over the decision
events in journal order): the demo draws every event id from one seeded generator, so posting one
message fewer shifts the ids of everything after it without changing any decision; relabelling
keeps what ids mean here (which fill belongs to which order, signal and position) and drops their
spelling. When an issue
asks for different decisions, regenerate the file and say so in the change:

    .venv/bin/python -m tests.demo.test_golden_decisions --write
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import sys
from pathlib import Path

import pytest

import main as cli

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden" / "demo_seed1_2026-12-03.json"
SEED, DAY = 1, "2026-12-03"
DECISIONS = ("signal.new", "review.verdict", "approval.decision", "order.request", "order.update",
             "order.fill", "position.update")

WORDING = frozenset({"summary", "concerns", "explanation"})
ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


def _strip(value: object, ids: dict[str, str]) -> object:
    if isinstance(value, dict):
        return {k: _strip(v, ids) for k, v in value.items() if k not in WORDING}
    if isinstance(value, list):
        return [_strip(v, ids) for v in value]
    if isinstance(value, str):
        return ULID.sub(lambda m: ids.setdefault(m.group(0), f"id#{len(ids)}"), value)
    return value


def decision_lines(journal: Path) -> dict[str, list[str]]:
    by_type: dict[str, list[str]] = {t: [] for t in DECISIONS}
    ids: dict[str, str] = {}
    with journal.open(encoding="utf-8") as fh:
        for line in fh:
            event = json.loads(line)
            if event["type"] in by_type:
                by_type[event["type"]].append(json.dumps(_strip(event, ids), sort_keys=True, ensure_ascii=False))
    return by_type


def digest(by_type: dict[str, list[str]]) -> dict[str, dict[str, object]]:
    return {t: {"count": len(lines), "sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest()}
            for t, lines in by_type.items()}


def run_day(out: Path) -> dict[str, list[str]]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rc = cli.main(["demo", "--seed", str(SEED), "--date", DAY, "--out", str(out)])
    assert rc == 0, f"demo exited {rc}"
    return decision_lines(out / "journal.jsonl")


@pytest.mark.timeout(1200)  # one whole demo day: about a minute of CPU, several under load
def test_demo_decisions_equal_the_golden_hashes(tmp_path):
    golden = json.loads(GOLDEN.read_text())
    by_type = run_day(tmp_path / "day")
    got = digest(by_type)
    differ = [t for t in DECISIONS if got[t] != golden["decisions"][t]]
    if differ:
        (tmp_path / "decisions.jsonl").write_text("\n".join(l for t in DECISIONS for l in by_type[t]))
    assert not differ, (
        f"demo decisions changed for {differ}: got {[got[t] for t in differ]}, golden "
        f"{[golden['decisions'][t] for t in differ]} (lines in {tmp_path / 'decisions.jsonl'}; "
        f"first {by_type[differ[0]][:1]})")


if __name__ == "__main__":  # regenerate: python -m tests.demo.test_golden_decisions --write
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        result = {"seed": SEED, "date": DAY, "decisions": digest(run_day(Path(d) / "day"))}
    text = json.dumps(result, indent=2, sort_keys=True) + "\n"
    if "--write" in sys.argv:
        GOLDEN.write_text(text)
    print(text)
