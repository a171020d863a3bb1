"""The ``python main.py ledger ...`` commands: migrate, stats, export, rebuild.

``main.py`` parses the arguments and hands them here with the loaded settings and secrets; every
expected failure (bad date, unreachable database or Redis, no ledger yet, another mode's ledger)
is a ``LedgerCliError``: one line on stderr and exit status 2, never a traceback.

Decisions:
- **Which ledger**: ``--database-url``, else ``DATABASE_URL``, else the mode's SQLite file
  (``ledger.sqlite_path``); ``--mode`` defaults to the configured mode and is not checked against
  the mode table (like ``halt``: reading a ledger must work whatever the config says).
- **Reads never write**: ``stats`` and ``export`` neither create a missing SQLite file nor migrate;
  a ledger that is missing, unmigrated or at another revision is refused with what to run. With
  ``--mode`` they refuse a ledger holding another mode's records; without it they read any.
- **Writes check the mode**: ``rebuild`` opens the ledger like the service does (migrate to head,
  claim or check the mode), so it can never pour one mode's stream into another mode's ledger.
- ``migrate --down`` needs an explicit ``--revision`` (``base`` drops every table): no default.
- A database URL's password is never printed: every message describes the URL with it masked
  and masks it in the driver's error text too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from core.config.model import Settings
from core.config.secrets import Secrets
from core.format.numbers import money, pct, signed_money
from core.ledger.store import (
    MIGRATIONS,
    LedgerModeError,
    LedgerStore,
    LedgerUnavailable,
    current_revision,
    held_mode,
    make_engine,
    migrate,
    resolve_url,
)

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class LedgerCliError(Exception):
    """Bad input or an unusable ledger / Redis: one line on stderr, exit 2."""


# ------------------------------------------------------------------ shared
def _mode(args: argparse.Namespace, settings: Settings) -> str:
    return getattr(args, "mode", None) or settings.mode.value


def _parsed(url: str) -> URL:
    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        # the text is not echoed: it may carry a password
        raise LedgerCliError("ledger database URL: not a database URL (expected postgresql://user@host/db "
                             "or sqlite:///FILE)") from None


def ledger_url(args: argparse.Namespace, settings: Settings, secrets: Secrets, mode: str) -> str:
    secret = secrets.database_url.get_secret_value() if secrets.database_url else None
    url = resolve_url(settings.ledger.sqlite_path, mode, secret, override=getattr(args, "database_url", None))
    parsed = _parsed(url)
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend not in ("sqlite", "postgresql") or (backend == "postgresql" and driver != "psycopg"):
        raise LedgerCliError(f"ledger database {describe(url)}: unsupported (PostgreSQL through psycopg, "
                             f"postgresql://..., or SQLite, sqlite:///FILE)")
    return url


def describe(url: str) -> str:
    return _parsed(url).render_as_string(hide_password=True)


def _scrub(text: str, url: str) -> str:
    password = _parsed(url).password
    return text.replace(str(password), "***") if password else text


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Database failures as one line (password masked)."""
    try:
        yield
    except LedgerUnavailable as exc:
        raise LedgerCliError(_scrub(str(exc), url)) from None
    except LedgerModeError as exc:
        raise LedgerCliError(_scrub(str(exc), url)) from None
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        first = (str(orig).strip().splitlines() or [""])[0]
        what = "unreachable" if type(exc).__name__ in ("OperationalError", "InterfaceError") else "refused"
        raise LedgerCliError(_scrub(f"ledger database {describe(url)} {what}: {type(orig).__name__}: {first}",
                                    url)) from None


def _sqlite_file(url: str) -> Path | None:
    parsed = _parsed(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    return Path(parsed.database or "")


def head_revision() -> str | None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


def open_for_reading(url: str, mode: str | None, timeout_s: float) -> tuple[Engine, str | None, str | None]:
    """An engine on an existing ledger at the code's revision; returns (engine, the mode its records
    are of (None: none written yet), revision). ``mode`` given: refuse another mode's ledger."""
    path = _sqlite_file(url)
    if path is not None and not (str(path) and path.is_file()):
        raise LedgerCliError(f"no ledger at {describe(url)} (nothing recorded yet for this mode; "
                             f"give --mode or --database-url)")
    engine = make_engine(url, timeout_s)
    with database_errors(url):
        rev = current_revision(engine)
        head = head_revision()
        if rev != head:
            engine.dispose()
            raise LedgerCliError(f"ledger {describe(url)} is at revision {rev or 'none (not initialised)'}, "
                                 f"this code reads {head}: run `python main.py ledger migrate`")
        with engine.connect() as conn:
            held = held_mode(conn)
    if mode is not None and held is not None and held != mode:
        engine.dispose()
        raise LedgerCliError(f"the ledger at {describe(url)} holds {held!r} records, not {mode!r}")
    return engine, held, rev


def parse_day(raw: str | None, flag: str) -> date | None:
    if raw is None:
        return None
    try:
        if not _DAY.match(raw.strip()):
            raise ValueError
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise LedgerCliError(f"{flag} {raw!r}: expected a date YYYY-MM-DD") from None


def parse_span(args: argparse.Namespace, *, required: bool = False) -> tuple[date | None, date | None]:
    first, last = parse_day(args.from_day, "--from"), parse_day(args.to_day, "--to")
    if required and (first is None or last is None):
        raise LedgerCliError("--from YYYY-MM-DD and --to YYYY-MM-DD are both required (New York days)")
    if first is not None and last is not None and first > last:
        raise LedgerCliError(f"--from {first} is after --to {last}")
    return first, last


# ------------------------------------------------------------------ migrate
def cmd_migrate(args: argparse.Namespace, settings: Settings, secrets: Secrets) -> int:
    from alembic.util import CommandError

    mode = _mode(args, settings)
    url = ledger_url(args, settings, secrets, mode)
    if args.down and not args.revision:
        raise LedgerCliError("--down needs --revision R (the revision to go back to; `base` drops every table)")
    path = _sqlite_file(url)
    if args.down and path is not None and not path.is_file():
        raise LedgerCliError(f"no ledger at {describe(url)} to migrate down")
    engine = make_engine(url, settings.ledger.connect_timeout_s)
    try:
        with database_errors(url):
            before = current_revision(engine)
            try:
                migrate(engine, args.revision or "head", down=args.down)
            except CommandError as exc:
                raise LedgerCliError(f"ledger migrate: {(str(exc).splitlines() or [''])[0]}") from None
            after = current_revision(engine)
    finally:
        engine.dispose()
    print(f"ledger {describe(url)}: revision {before or 'none'} -> {after or 'none'}")
    return 0


# ------------------------------------------------------------------ stats
def _money(x: float | None) -> str:
    return signed_money(x)  # core.format.numbers: "+$892.70", "-$48.60", None -> "n/a"


def _pct(x: float | None) -> str:
    return pct(x, False, 1)


def format_stats(d: dict[str, Any]) -> str:
    span = f"{d['from'] or 'first'} .. {d['to'] or 'last'}" if d["from"] or d["to"] else "all days"
    lines = [
        f"ledger   {d['database']} (mode {d['mode'] or '-'})",
        f"span     {span} (New York days)",
        f"signals  {d['signals']}   approved {d['approved']}   rejected {d['rejected']}",
        f"orders   {d['orders']}   fills {d['fills']}   commissions {money(d['commissions'])}",
        (f"trades   {d['trades']}   wins {d['wins']}   losses {d['losses']}   flat {d['flat']}   "
         f"win rate {_pct(d['win_rate_pct'])}"),
        (f"P&L      realized {_money(d['realized_pnl'])}   avg win {_money(d['avg_win'])}   "
         f"avg loss {_money(d['avg_loss'])}"),
    ]
    if d["by_strategy"]:
        width = max(8, *(len(k) for k in d["by_strategy"]))
        lines += ["", f"{'strategy':<{width}}  trades  wins  losses  flat   win rate    realized P&L"]
        for name, sc in d["by_strategy"].items():
            lines.append(f"{name:<{width}}  {sc['trades']:>6}  {sc['wins']:>4}  {sc['losses']:>6}  {sc['flat']:>4}  "
                         f"{_pct(sc['win_rate_pct']):>9}  {_money(sc['realized_pnl']):>14}")
    return "\n".join(lines)


def cmd_stats(args: argparse.Namespace, settings: Settings, secrets: Secrets) -> int:
    from core.ledger.queries import stats

    first, last = parse_span(args)
    url = ledger_url(args, settings, secrets, _mode(args, settings))
    engine, held, _rev = open_for_reading(url, args.mode, settings.ledger.connect_timeout_s)
    try:
        with database_errors(url), engine.connect() as conn:
            result = stats(conn, first, last)
    finally:
        engine.dispose()
    out = {**result.as_dict(), "mode": held, "database": describe(url)}
    print(json.dumps(out, sort_keys=False) if args.json else format_stats(out))
    return 0


# ------------------------------------------------------------------ export
def _formats(raw: str | None) -> list[str]:
    from core.ledger.export import FORMATS

    wanted = [f.strip().lower() for f in (raw or ",".join(FORMATS)).split(",") if f.strip()]
    bad = [f for f in wanted if f not in FORMATS]
    if bad or not wanted:
        raise LedgerCliError(f"--format {raw!r}: expected a comma-separated subset of {','.join(FORMATS)}")
    return list(dict.fromkeys(wanted))


def _writable_folder(raw: str | None) -> Path:
    if not raw:
        raise LedgerCliError("--out DIR is required (the folder the files are written to)")
    out = Path(raw)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise LedgerCliError(f"--out {out}: cannot create or write the folder ({exc.strerror or exc})") from None
    return out


def cmd_export(args: argparse.Namespace, settings: Settings, secrets: Secrets) -> int:
    from core.ledger.export import export_span

    first, last = parse_span(args, required=True)
    assert first is not None and last is not None
    formats = _formats(args.format)
    url = ledger_url(args, settings, secrets, _mode(args, settings))
    engine, held, rev = open_for_reading(url, args.mode, settings.ledger.connect_timeout_s)
    try:
        out = _writable_folder(args.out)
        with database_errors(url), engine.connect() as conn:
            try:
                manifest = export_span(conn, first, last, out, formats, database=describe(url), mode=held,
                                       revision=rev)
            except OSError as exc:
                raise LedgerCliError(f"--out {out}: writing failed ({exc.strerror or exc})") from None
    finally:
        engine.dispose()
    counts = ", ".join(f"{k} {v['rows']}" for k, v in manifest["tables"].items() if v["rows"])
    print(f"exported {first} .. {last} from {describe(url)} to {out} ({', '.join(formats)}): {counts or 'no rows'}")
    return 0


# ------------------------------------------------------------------ rebuild
async def _rebuild(args: argparse.Namespace, settings: Settings, secrets: Secrets) -> tuple[str, str, Any]:
    from redis.exceptions import RedisError

    from core.bus.connection import RedisUnavailable, connect
    from core.bus.keys import Keys
    from core.ledger.rebuild import rebuild

    mode = _mode(args, settings)
    url = ledger_url(args, settings, secrets, mode)
    redis_url = settings.redis.url or (secrets.redis_url.get_secret_value() if secrets.redis_url else None)
    try:  # a real Redis only: the embedded one would be empty and "rebuild" nothing
        handle = await connect(redis_url, fallback=False, timeout=settings.redis.connect_timeout_s)
    except RedisUnavailable as exc:
        raise LedgerCliError(str(exc)) from None
    namespace = f"{settings.redis.key_prefix}.{mode}"
    store = LedgerStore(url, mode, connect_timeout_s=settings.ledger.connect_timeout_s)
    try:
        with database_errors(url):
            await store.aopen()
            try:
                report = await rebuild(handle.client, Keys(namespace), store)
            except (RedisError, OSError) as exc:
                raise LedgerCliError(f"Redis lost during the rebuild ({type(exc).__name__}); what was written "
                                     f"stays, run it again to complete") from None
    finally:
        store.close()
        await handle.close()
    return namespace, describe(url), report


def cmd_rebuild(args: argparse.Namespace, settings: Settings, secrets: Secrets) -> int:
    namespace, desc, report = asyncio.run(_rebuild(args, settings, secrets))
    if args.json:
        print(json.dumps({"namespace": namespace, "database": desc, **report.as_dict()}))
    else:
        print(f"rebuild {namespace} -> {desc}: {report.read} entries read, {report.ledgered} ledgered events, "
              f"{report.written} new written, {report.malformed} malformed skipped, {report.other} not ledgered")
    return 0


COMMANDS = {"migrate": cmd_migrate, "stats": cmd_stats, "export": cmd_export, "rebuild": cmd_rebuild}


def run(args: argparse.Namespace, settings: Settings, secrets: Secrets) -> int:
    return COMMANDS[args.ledger_command](args, settings, secrets)
