"""The start-up lines of ``run``: what this process really runs, so a mode can never lie.

    mode: dry-run (Redis keys q.dry-run:*)
    market data: IBKR 127.0.0.1:7497 client 11 (market data: live)
    broker: paper fills against the market source's quotes (simulated)
    messages: local outbox var/demo/outbox.jsonl (subscribers see nothing)
    approvals: manual, and no Telegram approver (...): decide cards with `python main.py pending` ...

Each line comes from the part itself (the market source's and the broker's ``describe``), not
from what the configuration hoped for; a part this process does not run says where it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.config.model import Settings


def _service(services: Sequence[Any], name: str) -> Any:
    return next((s for s in services if getattr(s, "name", None) == name), None)


def startup_lines(settings: Settings, services: Sequence[Any], ctx: Any) -> list[str]:
    lines = [f"mode: {settings.mode.value} (Redis keys {settings.key_namespace}:*)"]
    market = _service(services, "market")
    lines.append("market data: " + (market.source.describe() if market is not None
                                    else f"{settings.market.source} (in another process)"))
    execution = _service(services, "execution")
    if execution is None:
        lines.append(f"broker: {settings.execution.broker} (in another process)")
    else:
        d = execution.broker.describe()
        if d.get("name") == "paper":
            lines.append(f"broker: paper fills against the {settings.market.source} quotes (simulated)")
        else:
            state = "connected" if d.get("connected") == "1" else "NOT connected"
            lines.append(f"broker: {d.get('name')} account {d.get('account', '?')} ({state})")
    if settings.distribution.sink == "live":
        lines.append(f"messages: live to {', '.join(settings.distribution.channels)} (paying subscribers)")
    else:
        out = Path(ctx.out_dir or settings.demo.out_dir) / "outbox.jsonl"
        lines.append(f"messages: local outbox {out} (subscribers see nothing)")
    lines.extend(approver_lines(settings, ctx.secrets))
    return lines


def approver_lines(settings: Settings, secrets: Any) -> list[str]:
    """Manual approval with no Telegram approver configured (no bot token or no admin ids): every card
    waits for the command line, so say so and name the commands. Decision: judged on this process's
    configuration; the policy is the configured one (a ``/mode`` override needs the bot anyway)."""
    token = secrets.telegram_bot_token
    has_token = token is not None and bool(token.get_secret_value().strip())
    if settings.approval.policy != "manual" or (has_token and secrets.admin_ids()):
        return []
    mode = settings.mode.value
    line = (f"approvals: manual, and no Telegram approver (TELEGRAM_BOT_TOKEN / TELEGRAM_ADMIN_IDS unset): "
            f"decide cards with `python main.py pending --mode {mode}`, `approve ID [--half] --mode {mode}`, "
            f"`reject ID --mode {mode}`")
    return [line]
