"""Quanticity command line: wires services together; nothing else lives here.

    python main.py demo [--seed N] [--date YYYY-MM-DD] [--out DIR] [--json]
    python main.py run --mode live|dry-run|demo [--services a,b] [--speed N (demo)]
    python main.py status [--json] | halt --reason TEXT | resume   (each with [--mode M])
    python main.py pending [--json] | approve ID [--half] | reject ID   (each with [--mode M])
    python main.py ibkr check [--host H] [--port P] [--client-id N] [--json]
    python main.py check-config [--config FILE]
    python main.py analytics CHAIN.json
    python main.py overseer review SIGNAL.json [--state STATE.json] [--at ISO8601]
    python main.py ledger migrate|stats|export|rebuild ...   (each with [--mode M] [--database-url URL])

Exit codes: 0 ok, 1 runtime failure, 2 bad input / configuration / unreachable Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from core.config import ConfigError, Secrets, Settings, load_secrets, load_settings

ROOT = Path(__file__).resolve().parent
DEMO_OVERLAY = ROOT / "config" / "demo.yaml"

# Lock-step order matters only for tie-breaking inside one simulated instant.
SERVICE_ORDER = ("market", "analytics", "signals", "overseer", "approvals", "execution", "positions",
                 "anomaly", "reports", "distributor", "telegram", "ledger")


class UsageError(Exception):
    """Bad command-line input: printed on one line, exit 2."""


def _fail(msg: str, code: int = 2) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return code


# ------------------------------------------------------------------ wiring
def service_factories() -> dict[str, Callable[[Any], Any]]:
    """Name -> constructor(ctx). Imports are local so light commands stay fast."""

    def market(ctx: Any) -> Any:
        from core.market.service import MarketDataService

        return MarketDataService(ctx)

    def analytics(ctx: Any) -> Any:
        from core.analytics.service import AnalyticsService

        return AnalyticsService(ctx)

    def signals(ctx: Any) -> Any:
        from core.signals.service import SignalService

        return SignalService(ctx)

    def overseer(ctx: Any) -> Any:
        from overseer.review.service import ReviewService

        return ReviewService(ctx)

    def anomaly(ctx: Any) -> Any:
        from overseer.anomaly.service import AnomalyService

        return AnomalyService(ctx)

    def approvals(ctx: Any) -> Any:
        from core.approvals.service import ApprovalService

        return ApprovalService(ctx)

    def execution(ctx: Any) -> Any:
        from core.execution.service import ExecutionService

        return ExecutionService(ctx)

    def positions(ctx: Any) -> Any:
        from core.positions.service import PositionService

        return PositionService(ctx)

    def distributor(ctx: Any) -> Any:
        from bot.distribution.service import DistributorService

        return DistributorService(ctx)

    def reports(ctx: Any) -> Any:
        from reports.service import ReportService

        return ReportService(ctx)

    def telegram(ctx: Any) -> Any:
        from bot.telegram.service import TelegramBotService

        return TelegramBotService(ctx)

    def ledger(ctx: Any) -> Any:
        from core.ledger.service import LedgerService

        return LedgerService(ctx)

    return {"market": market, "analytics": analytics, "signals": signals, "overseer": overseer,
            "anomaly": anomaly, "approvals": approvals, "execution": execution, "positions": positions,
            "distributor": distributor, "reports": reports, "telegram": telegram, "ledger": ledger}


def build_services(ctx: Any, names: list[str]) -> list[Any]:
    factories = service_factories()
    unknown = [n for n in names if n not in factories]
    if unknown:
        raise UsageError(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(SERVICE_ORDER)}")
    return [factories[n](ctx) for n in SERVICE_ORDER if n in names]


def default_services(settings: Settings, secrets: Secrets) -> list[str]:
    names = [n for n in SERVICE_ORDER if n not in ("telegram", "ledger")]
    if settings.telegram.enabled or secrets.telegram_bot_token is not None:
        names.append("telegram")
    if settings.ledger.enabled:
        names.append("ledger")
    return names


# ------------------------------------------------------------------ shared setup
def _settings(args: argparse.Namespace, overlay: Path | None = None) -> Settings:
    mode = getattr(args, "mode", None) if args.command == "run" else None
    if overlay is not None and getattr(args, "config", None) is None:
        return load_settings(overlay)
    if overlay is not None:
        # demo overlay first, then the user's file on top
        import yaml

        from core.config.loader import _merge, _read_yaml

        merged = _merge(_read_yaml(overlay), _read_yaml(Path(args.config)), str(args.config), {})
        tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"quanticity-demo-{os.getpid()}.yaml"
        tmp.write_text(yaml.safe_dump(merged))
        try:
            return load_settings(tmp)
        finally:
            tmp.unlink(missing_ok=True)
    return load_settings(getattr(args, "config", None), mode=mode)


def _redis_url(settings: Settings, secrets: Secrets) -> str | None:
    if settings.redis.url:
        return settings.redis.url
    return secrets.redis_url.get_secret_value() if secrets.redis_url else None


async def _connect(settings: Settings, secrets: Secrets, *, quiet: bool = False) -> Any:
    from core.bus.connection import connect

    handle = await connect(_redis_url(settings, secrets), fallback=settings.redis.embedded_fallback,
                           timeout=settings.redis.connect_timeout_s)
    if handle.embedded or not quiet:
        print(f"redis: {handle.description}", file=sys.stderr)
    return handle


# ------------------------------------------------------------------ commands
def cmd_check_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    secrets = load_secrets()
    out = {"settings": settings.model_dump(mode="json"), "secrets": secrets.masked()}
    print(json.dumps(out, indent=2, sort_keys=True))
    print("config ok", file=sys.stderr)
    return 0


def cmd_analytics(args: argparse.Namespace) -> int:
    from core.analytics.report import ChainFileError, analyze_cboe_text, analyze_chain_json

    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except OSError as exc:
        return _fail(f"{args.file}: cannot read ({exc.strerror or exc})")
    except UnicodeDecodeError as exc:
        return _fail(f"{args.file}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})")
    settings = _settings(args)
    a = settings.analytics  # the same analytics configuration the AnalyticsService uses
    kw = {"rate": settings.market.rate, "dividend_yield": settings.market.dividend_yield,
          "grid_levels": a.flip_grid_levels, "flip_range_pct": a.flip_range_pct,
          "min_minutes_to_expiry": a.min_minutes_to_expiry}
    try:
        if str(args.file).lower().endswith(".csv"):  # a Cboe delayed-quote export
            result = analyze_cboe_text(text, **kw)
        else:
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                return _fail(f"{args.file}: not valid JSON (line {exc.lineno}: {exc.msg})")
            result = analyze_chain_json(obj, **kw)
    except ChainFileError as exc:
        return _fail(f"{args.file}: {exc}")
    print(json.dumps(result, indent=2))
    return 0


def _review_time(raw: str | None) -> datetime:
    """``--at``: an ISO 8601 time WITH its UTC offset (``Z`` allowed); default the wall clock. A time
    without an offset is refused rather than guessed: the rules depend on the New York clock."""
    from datetime import UTC

    if raw is None:
        from core.clock.clock import LiveClock

        return LiveClock().now()
    text = raw.strip()
    try:
        at = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text)
    except (ValueError, IndexError):
        raise UsageError(f"--at {raw!r}: not an ISO 8601 time (e.g. 2026-12-03T10:15:00-05:00)") from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise UsageError(f"--at {raw!r}: needs a UTC offset (e.g. 2026-12-03T10:15:00-05:00 or ...Z)")
    return at.astimezone(UTC)


def cmd_overseer(args: argparse.Namespace) -> int:
    from overseer.cli import InputFileError, review_file

    at = _review_time(args.at)
    settings = _settings(args)
    try:
        verdict = asyncio.run(review_file(args.signal, args.state, settings, load_secrets(), at))
    except InputFileError as exc:
        return _fail(str(exc))
    print(json.dumps(verdict, indent=2, default=str))
    return 0


def _namespace(args: argparse.Namespace, settings: Settings) -> str:
    """Whose state a control command touches: ``--mode`` or the configured mode's key namespace
    (not validated against the mode table: a halt must work whatever the config says)."""
    mode = getattr(args, "mode", None) or settings.mode.value
    return f"{settings.redis.key_prefix}.{mode}"


async def _with_bus(settings: Settings, fn: Callable[[Any], Any], namespace: str | None = None) -> Any:
    from core.bus.bus import Bus
    from core.bus.keys import Keys
    from core.clock.clock import LiveClock

    secrets = load_secrets()
    handle = await _connect(settings, secrets, quiet=True)
    try:
        bus = Bus(handle.client, Keys(namespace or settings.key_namespace), LiveClock(), source="cli")
        return await fn(bus)
    finally:
        await handle.close()


def cmd_halt(args: argparse.Namespace) -> int:
    from core.control.halt import set_halt

    settings = _settings(args)
    user = os.environ.get("USER", "cli")
    asyncio.run(_with_bus(settings, lambda bus: set_halt(bus, args.reason, by=f"cli:{user}"),
                          _namespace(args, settings)))
    print(f"halted: {args.reason}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from core.control.halt import clear_halt

    settings = _settings(args)
    user = os.environ.get("USER", "cli")
    asyncio.run(_with_bus(settings, lambda bus: clear_halt(bus, by=f"cli:{user}", reason="resume from CLI"),
                          _namespace(args, settings)))
    print("resumed")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from core.state.status import collect_status, format_status

    settings = _settings(args)
    status = asyncio.run(_with_bus(settings, lambda bus: collect_status(bus, settings), _namespace(args, settings)))
    print(json.dumps(status, indent=2, sort_keys=True) if args.json else format_status(status))
    return 0


def cmd_pending(args: argparse.Namespace) -> int:
    from core.approvals.cli import format_pending, operator_bus, pending_items

    async def listing(bus: Any) -> Any:
        return await pending_items(await operator_bus(bus))

    settings = _settings(args)
    items = asyncio.run(_with_bus(settings, listing, _namespace(args, settings)))
    print(json.dumps(items, sort_keys=True) if args.json else format_pending(items))
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    """approve / reject: the same atomic claim as the Telegram buttons (core.approvals.cli)."""
    from core.approvals.cli import decide, operator_bus

    decision = "approved" if args.command == "approve" else "rejected"
    by = f"cli:{os.environ.get('USER') or 'cli'}"

    async def deciding(bus: Any) -> Any:
        return await decide(await operator_bus(bus), args.id, decision, by, half=getattr(args, "half", False))

    settings = _settings(args)
    outcome = asyncio.run(_with_bus(settings, deciding, _namespace(args, settings)))
    if not outcome.decided:
        return _fail(outcome.line)
    print(outcome.line)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    speed = None
    if args.speed is not None:
        from core.clock.scaled_clock import check_speed

        if args.mode != "demo":
            raise UsageError(f"--speed is for --mode demo only (a {args.mode} run follows the wall clock)")
        try:
            speed = check_speed(args.speed)
        except ValueError as exc:
            raise UsageError(f"--speed {args.speed}: expected a finite number >= 1") from exc
    settings = _settings(args)
    if args.mode == "demo" and not args.config:
        data = settings.model_dump()
        data["approval"]["policy"] = "auto"
        settings = Settings.model_validate(data)
    secrets = load_secrets()
    names = [n.strip() for n in args.services.split(",") if n.strip()] if args.services else \
        default_services(settings, secrets)
    return asyncio.run(_run_live(settings, secrets, names, speed=speed or 1.0))


async def _keep_time(timeline: Any, runner: Any) -> None:
    """Beat the shared demo timeline every second; stop the run at the simulated session's end."""
    import logging

    from core.clock.timeline import BEAT_S

    log = logging.getLogger("quanticity.clock")
    while not runner.stopping.is_set():
        try:
            if await timeline.beat():
                log.warning("demo clock follows a timeline re-anchored by another process (epoch %s)",
                            timeline.start.epoch)
        except Exception:  # Redis away: the clock runs on its anchor; the next beat catches up
            log.warning("demo clock: beat failed (Redis unreachable?)", exc_info=True)
        if timeline.ended:
            print(f"simulated session {timeline.start.day} ended: stopping (the next start plays the next "
                  f"session from 09:25)", file=sys.stderr)
            runner.request_stop()
            return
        try:
            await asyncio.wait_for(runner.stopping.wait(), timeout=BEAT_S)
        except TimeoutError:
            pass


async def _run_live(settings: Settings, secrets: Secrets, names: list[str], *, speed: float = 1.0) -> int:
    from core.bus.bus import Bus
    from core.bus.keys import Keys
    from core.clock.calendar import NY, NyseCalendar
    from core.clock.clock import LiveClock
    from core.clock.timeline import open_timeline
    from core.runtime import metrics
    from core.runtime.live_runner import LiveRunner
    from core.runtime.logging_setup import configure
    from core.runtime.service import Context

    metrics_on = bool(settings.metrics.enabled and settings.metrics.port)
    if metrics_on:  # first: a taken port is one line and exit 2, before any output, Redis or service
        metrics.serve(settings.metrics.port)
    configure(settings.logging.level, settings.logging.json_output, secrets=secrets)
    cal = NyseCalendar()
    clock: Any = LiveClock()
    handle = await _connect(settings, secrets)
    timeline = None
    try:
        if settings.mode == "demo":
            try:
                timeline = await open_timeline(handle.client, Keys(settings.key_namespace), speed=speed,
                                               calendar=cal, end=settings.demo.end)
            except ValueError as exc:  # ClockConflict (another speed running), demo.end before 09:25
                raise UsageError(str(exc)) from None
            clock = timeline.clock
            st = timeline.start
            print(f"demo at {speed:g}x: simulated session {st.day}, clock {st.how} at "
                  f"{clock.now().astimezone(NY):%H:%M:%S} New York, stops at {settings.demo.end:%H:%M}",
                  file=sys.stderr)
        bus = Bus(handle.client, Keys(settings.key_namespace), clock, maxlen=settings.redis.stream_maxlen,
                  source="run")
        ctx = Context(settings=settings, secrets=secrets, bus=bus, clock=clock, calendar=cal,
                      out_dir=str(Path(settings.demo.out_dir)) if settings.mode != "live" else None)
        services = build_services(ctx, names)
        if metrics_on:
            print(f"metrics: http://127.0.0.1:{settings.metrics.port}/metrics", file=sys.stderr)
        runner = LiveRunner(services)
        runner.install_signal_handlers()

        def banner() -> None:
            from core.runtime.banner import startup_lines

            for line in startup_lines(settings, services, ctx):
                print(line, file=sys.stderr)
            print(f"running {', '.join(s.name for s in services)} in {settings.mode} mode; Ctrl-C stops",
                  file=sys.stderr)

        keeper = asyncio.create_task(_keep_time(timeline, runner)) if timeline is not None else None
        try:
            await runner.run(after_start=banner)
        finally:
            if keeper is not None:
                keeper.cancel()
                await asyncio.gather(keeper, return_exceptions=True)
        if timeline is not None:
            try:
                await timeline.leave()
            except Exception as exc:  # noqa: BLE001 - Redis away at the very end: the last beat (1 s ago) stands
                print(f"demo clock: could not record the last instant ({type(exc).__name__})", file=sys.stderr)
    finally:
        await handle.close()
    return 0


def cmd_ibkr_check(args: argparse.Namespace) -> int:
    import logging

    from core.ibkr.check import check, format_check
    from core.ibkr.connection import IbUnavailable

    logging.getLogger("ib_async").addHandler(logging.NullHandler())  # our error is the one line
    logging.getLogger("ib_async").propagate = False
    settings = _settings(args)
    try:
        result = asyncio.run(check(settings, host=args.host, port=args.port, client_id=args.client_id))
    except IbUnavailable as exc:
        return _fail(str(exc))
    print(json.dumps(result, sort_keys=True, default=str) if args.json else format_check(result))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    from core.clock.calendar import NY, NyseCalendar
    from core.runtime.demo import default_session_day, run_demo

    settings = _settings(args, overlay=DEMO_OVERLAY)
    cal = NyseCalendar()
    if args.date:
        try:
            day = date.fromisoformat(args.date)
        except ValueError:
            raise UsageError(f"--date {args.date!r}: expected YYYY-MM-DD") from None
        # the simulator lists expiries ~45 days ahead, the report schedule looks a day back
        first, last = cal.span(before=7, after=60)
        if not first <= day <= last:
            raise UsageError(f"--date {day}: out of range; the demo simulates sessions from {first} to {last}")
        if not cal.is_session(day):
            raise UsageError(f"--date {day}: not an NYSE session day (weekend or holiday)")
    else:  # the last session that has closed: the same default (and output) all day long
        day = default_session_day(cal, datetime.now(NY))
    seed = settings.demo.seed if args.seed is None else args.seed
    out = Path(args.out or settings.demo.out_dir)
    try:  # up front, before any work: the folder must be creatable and writable
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise UsageError(f"{'--out' if args.out else 'demo.out_dir'} {out}: cannot create or write the "
                         f"output folder ({exc.strerror or exc})") from None
    # The demo uses no accounts: no secrets at all (the overseer says "model review unavailable"),
    # which also keeps the run deterministic for a seed.
    secrets = Secrets.model_construct()
    names = [n for n in SERVICE_ORDER if n != "telegram"]
    if args.database_url:  # up front: a ledger the day cannot write to is a bad argument, not a slow failure
        from core.ledger.cli import LedgerCliError, database_errors, ledger_url
        from core.ledger.store import LedgerStore

        try:
            url = ledger_url(args, settings, secrets, "demo")
            store = LedgerStore(url, "demo", connect_timeout_s=3)
            try:
                with database_errors(url):
                    store.open()
            finally:
                store.close()
        except LedgerCliError as exc:
            raise UsageError(f"--database-url: {exc}") from None

    def finalize_outbox(folder: Path) -> None:  # after the run: the page can change no decision
        from bot.distribution.outbox_cards import CardSettings
        from bot.distribution.outbox_html import render_outbox_html

        cards = CardSettings(settings.risk.account_value,
                             {name: s.card_ttl_s for name, s in settings.strategies.items()})
        render_outbox_html(folder / "outbox.jsonl", folder / "outbox.html", folder / "journal.jsonl", cards)

    try:
        summary = asyncio.run(run_demo(settings, secrets, day, seed, out, lambda ctx: build_services(ctx, names),
                                       finalizers=[finalize_outbox], progress=True,
                                       redis_url=_redis_url(settings, load_secrets()),
                                       extras={"ledger_url": args.database_url} if args.database_url else None))
    except (KeyboardInterrupt, asyncio.CancelledError) as exc:  # Ctrl-C / SIGTERM: the keys are wiped by then
        print(f"\ndemo: {'interrupted' if isinstance(exc, KeyboardInterrupt) else 'stopped'}; its Redis keys "
              "were removed, the output folder is incomplete", file=sys.stderr)
        return 130 if isinstance(exc, KeyboardInterrupt) else 143
    if args.json:
        print(json.dumps(summary, sort_keys=False))
    return 0


def cmd_ledger(args: argparse.Namespace) -> int:
    from core.ledger.cli import LedgerCliError, run

    try:
        return run(args, _settings(args), load_secrets())
    except LedgerCliError as exc:
        return _fail(str(exc))


# ------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="main.py", description="Quanticity: chat-ops options desk with an AI overseer")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("--config", metavar="FILE", help="YAML overlay on config/default.yaml")
        sp.set_defaults(fn=fn)
        return sp

    d = add("demo", cmd_demo, "simulate one NYSE session end to end (no accounts, no services)")
    d.add_argument("--seed", type=int, help="random seed (default: demo.seed)")
    d.add_argument("--date", help="session day YYYY-MM-DD (default: the most recent session that has closed)")
    d.add_argument("--out", metavar="DIR", help="output folder (default: demo.out_dir = var/demo)")
    d.add_argument("--json", action="store_true", help="print a JSON summary as the last stdout line")
    d.add_argument("--database-url", metavar="URL",
                   help="ledger database (default: <out>/ledger.sqlite; e.g. postgresql://127.0.0.1/quanticity)")

    r = add("run", cmd_run, "run services concurrently in real time")
    r.add_argument("--mode", choices=["live", "dry-run", "demo"], required=True)
    r.add_argument("--services", help=f"comma-separated subset of: {','.join(SERVICE_ORDER)}")
    r.add_argument("--speed", type=str, metavar="N",
                   help="demo only: simulated time runs N x wall time (N >= 1, default 1); resumes where the "
                        "last run stopped, stops at demo.end")

    modes = ["live", "dry-run", "demo"]
    s = add("status", cmd_status, "mode, halt, positions, P&L, feed freshness")
    s.add_argument("--json", action="store_true")
    s.add_argument("--mode", choices=modes, help="whose state (default: the configured mode)")

    h = add("halt", cmd_halt, "halt trading (persistent until resume)")
    h.add_argument("--reason", required=True)
    h.add_argument("--mode", choices=modes, help="which mode's trading (default: the configured mode)")
    rs = add("resume", cmd_resume, "clear the halt")
    rs.add_argument("--mode", choices=modes, help="which mode's trading (default: the configured mode)")

    pn = add("pending", cmd_pending, "cards waiting for a decision (signals and reports)")
    pn.add_argument("--json", action="store_true", help="one JSON list")
    pn.add_argument("--mode", choices=modes, help="whose cards (default: the configured mode)")
    ap = add("approve", cmd_decide, "approve a signal or report card by id (same claim as Telegram)")
    ap.add_argument("id", metavar="ID")
    ap.add_argument("--half", action="store_true", help="signals: approve half the size (at least 1)")
    ap.add_argument("--mode", choices=modes, help="whose cards (default: the configured mode)")
    rj = add("reject", cmd_decide, "reject a signal or report card by id (same claim as Telegram)")
    rj.add_argument("id", metavar="ID")
    rj.add_argument("--mode", choices=modes, help="whose cards (default: the configured mode)")

    ib = add("ibkr", lambda a: _fail("use: ibkr check"), "Interactive Brokers tools")
    ibsub = ib.add_subparsers(dest="ibkr_command", required=True)
    ck = ibsub.add_parser("check", help="connect to TWS / IB Gateway, print account, positions, open orders",
                          description="connect to TWS / IB Gateway, print server version, accounts, net "
                                      "liquidation, positions and open orders, then disconnect (exit 2 "
                                      "when it cannot connect)")
    ck.add_argument("--host", help="default: ibkr.host")
    ck.add_argument("--port", type=int, help="default: ibkr.port (TWS 7497 paper / 7496 live, Gateway 4002 / 4001)")
    ck.add_argument("--client-id", type=int, dest="client_id", help="default: ibkr.client_ids.check")
    ck.add_argument("--json", action="store_true", help="one JSON object")
    ck.add_argument("--config", metavar="FILE")
    ck.set_defaults(fn=cmd_ibkr_check)
    add("check-config", cmd_check_config, "validate config and print it with secrets masked")

    a = add("analytics", cmd_analytics, "dealer exposure and levels of an option chain file")
    a.add_argument("file", metavar="CHAIN.json", help="CHAIN.json, or a Cboe delayed-quote export (*.csv)")

    o = add("overseer", lambda a: _fail("use: overseer review SIGNAL.json"), "overseer tools")
    osub = o.add_subparsers(dest="overseer_command", required=True)
    rv = osub.add_parser("review", help="review a signal file: hard rules, then Claude",
                         description="review a signal file: hard rules, then Claude")
    rv.add_argument("signal", metavar="SIGNAL.json")
    rv.add_argument("--state", metavar="STATE.json")
    rv.add_argument("--at", metavar="ISO8601", help="evaluate as of this time, with its UTC offset (default: now)")
    rv.add_argument("--config", metavar="FILE")
    rv.set_defaults(fn=cmd_overseer)
    _add_ledger(sub, modes)
    return p


def _add_ledger(sub: Any, modes: list[str]) -> None:
    lg = sub.add_parser("ledger", help="the durable trade ledger: migrate, stats, export, rebuild",
                        description="the durable trade ledger (DATABASE_URL, else ledger.sqlite_path of the mode)")
    lsub = lg.add_subparsers(dest="ledger_command", required=True)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        sp = lsub.add_parser(name, help=help_, description=help_)
        sp.add_argument("--config", metavar="FILE", help="YAML overlay on config/default.yaml")
        sp.add_argument("--mode", choices=modes, help="whose ledger (default: the configured mode)")
        sp.add_argument("--database-url", metavar="URL", help="ledger database (default: DATABASE_URL, else "
                        "ledger.sqlite_path of the mode); e.g. postgresql://127.0.0.1/quanticity")
        sp.set_defaults(fn=cmd_ledger)
        return sp

    m = add("migrate", "bring the ledger schema to the newest revision (or R); prints the revision before/after")
    m.add_argument("--revision", metavar="R", help="target revision (default: head; with --down required, "
                   "e.g. base)")
    m.add_argument("--down", action="store_true", help="migrate down to --revision")
    st = add("stats", "signals, fills, closed trades, wins, losses and realized P&L of New York days")
    st.add_argument("--from", dest="from_day", metavar="YYYY-MM-DD", help="first New York day (default: open)")
    st.add_argument("--to", dest="to_day", metavar="YYYY-MM-DD", help="last New York day (default: open)")
    st.add_argument("--json", action="store_true", help="one JSON object")
    ex = add("export", "every ledger table's rows of New York days FROM..TO as CSV and Parquet, with "
                       "trades and manifest.json")
    ex.add_argument("--from", dest="from_day", metavar="YYYY-MM-DD", help="first New York day (required)")
    ex.add_argument("--to", dest="to_day", metavar="YYYY-MM-DD", help="last New York day (required)")
    ex.add_argument("--out", metavar="DIR", help="output folder (required)")
    ex.add_argument("--format", metavar="csv,parquet", help="file formats (default: csv,parquet)")
    rb = add("rebuild", "re-read the ledgered streams Redis still holds for the mode and ledger what is missing")
    rb.add_argument("--json", action="store_true", help="one JSON object")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except (ConfigError, UsageError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from core.bus.connection import RedisUnavailable
        from core.runtime.metrics import MetricsUnavailable

        if isinstance(exc, (RedisUnavailable, MetricsUnavailable)):
            return _fail(str(exc))
        if type(exc).__name__ == "IbUnavailable":  # TWS / IB Gateway not reachable at start
            return _fail(str(exc))
        raise


if __name__ == "__main__":
    sys.exit(main())
