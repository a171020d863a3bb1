"""``ledger rebuild`` on the real Redis into SQLite and the real PostgreSQL: it writes what the
streams hold, equal to the ledger the service writes; fills a gap (rows deleted, rebuilt, equal
again); writes nothing the second time; counts and skips malformed entries; refuses another
mode's ledger and an unreachable Redis (exit 2, one line)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import delete, select

from core.bus.events import encode
from core.bus.keys import Keys
from core.ledger import schema
from core.ledger.store import make_engine, resolve_url
from tests.ledger_cli._book import build
from tests.ledger_cli.conftest import PASSWORD, json_out, one_error_line, store_at

ALL = (schema.events, *schema.TYPED)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def namespace(tmp_path: Path) -> Iterator[tuple[Keys, Path]]:
    """A private key prefix on the test Redis (db 15) and a config file pointing the CLI at it;
    the namespace of mode demo is ``<prefix>.demo``."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    cfg = tmp_path / "ns.yaml"
    cfg.write_text(f"redis:\n  url: {REDIS_URL}\n  key_prefix: {prefix}\n  embedded_fallback: false\n")
    keys = Keys(f"{prefix}.demo")
    yield keys, cfg
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)
    client.close()


def publish(keys: Keys, events: list[Any], junk: int = 0) -> None:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        for ev in events:
            client.xadd(keys.stream(ev.STREAM), encode(ev))
        bad = [{"t": "signal.new", "d": "{not json"}, {"x": "no type"},
               {"t": "order.fill", "d": '{"id": "bad-fill", "ts": 1, "correlation_id": "c", "qty": -5}'}]
        for i in range(junk):
            client.xadd(keys.stream(("signals", "orders", "alerts")[i % 3]), bad[i % 3])
    finally:
        client.close()


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    eng = make_engine(resolve_url("", "demo", None, override=url))
    try:
        with eng.connect() as conn:
            return {t.name: [tuple(r) for r in conn.execute(select(t).order_by(t.c.event_id))] for t in ALL}
    finally:
        eng.dispose()


def rebuild(cli, cfg: Path, url: str, *extra: str) -> dict[str, Any]:
    code, out, err = cli("rebuild", "--json", "--config", str(cfg), "--database-url", url, *extra)
    assert code == 0, err
    assert PASSWORD not in out + err
    return json_out(out)


def test_rebuild_equals_the_service_ledger_and_is_idempotent(cli, namespace, db_url, tmp_path):
    keys, cfg = namespace
    events = build().events
    publish(keys, events, junk=3)
    first = rebuild(cli, cfg, db_url)
    assert (first["read"], first["ledgered"], first["written"], first["malformed"]) == (
        len(events) + 3, len(events), len(events), 3)
    assert first["namespace"] == keys.prefix
    # what the service writes from the same events (LedgerStore.write, event by event)
    direct = store_at(f"sqlite:///{tmp_path / 'direct.sqlite'}").open()
    for ev in events:
        direct.write([ev])
    direct.close()
    assert snapshot(db_url) == snapshot(f"sqlite:///{tmp_path / 'direct.sqlite'}")
    again = rebuild(cli, cfg, db_url)
    assert (again["read"], again["written"], again["malformed"]) == (len(events) + 3, 0, 3)


def test_rebuild_fills_a_gap(cli, namespace, db_url):
    keys, cfg = namespace
    events = build().events
    publish(keys, events)
    rebuild(cli, cfg, db_url)
    whole = snapshot(db_url)
    eng = make_engine(resolve_url("", "demo", None, override=db_url))
    lost = [r[0] for r in whole["fills"]] + [r[0] for r in whole["position_events"]]
    with eng.begin() as conn:  # a gap: every fill and position event, from their tables and from events
        conn.execute(delete(schema.fills))
        conn.execute(delete(schema.position_events))
        conn.execute(delete(schema.events).where(schema.events.c.event_id.in_(lost)))
    eng.dispose()
    assert snapshot(db_url) != whole
    refill = rebuild(cli, cfg, db_url)
    assert refill["written"] == len(lost) == 14
    assert snapshot(db_url) == whole
    assert rebuild(cli, cfg, db_url)["written"] == 0


def test_rebuild_pages_through_a_long_stream(cli, namespace, tmp_path, monkeypatch):
    """More entries than one XRANGE page: every one is read once (no entry skipped or doubled
    at a page edge)."""
    import core.ledger.rebuild as rb

    monkeypatch.setattr(rb, "PAGE", 7)
    keys, cfg = namespace
    events = build().events
    publish(keys, events, junk=4)
    url = f"sqlite:///{tmp_path / 'paged.sqlite'}"
    got = rebuild(cli, cfg, url)
    assert (got["read"], got["written"], got["malformed"]) == (len(events) + 4, len(events), 4)
    assert sum(s["read"] for s in got["streams"].values()) == len(events) + 4


def test_rebuild_text_report(cli, namespace, tmp_path):
    keys, cfg = namespace
    publish(keys, build().events[:5], junk=1)
    code, out, err = cli("rebuild", "--config", str(cfg), "--database-url", f"sqlite:///{tmp_path / 'l.sqlite'}")
    assert code == 0, err
    assert "6 entries read" in out and "5 new written" in out and "1 malformed skipped" in out


def test_rebuild_refuses_another_modes_ledger(cli, namespace, tmp_path):
    keys, cfg = namespace
    publish(keys, build().events[:3])
    url = f"sqlite:///{tmp_path / 'live.sqlite'}"
    store_at(url, mode="live").open().close()
    code, _, err = cli("rebuild", "--config", str(cfg), "--database-url", url)
    one_error_line(code, err, "'live'", "'demo'")
    assert snapshot(url)["events"] == []


def test_rebuild_without_redis(cli, tmp_path):
    cfg = tmp_path / "noredis.yaml"
    cfg.write_text("redis:\n  url: redis://127.0.0.1:1/0\n")
    url = f"sqlite:///{tmp_path / 'never.sqlite'}"
    code, _, err = cli("rebuild", "--config", str(cfg), "--database-url", url)
    one_error_line(code, err, "Redis")
    assert not (tmp_path / "never.sqlite").exists()  # refused before touching the ledger
