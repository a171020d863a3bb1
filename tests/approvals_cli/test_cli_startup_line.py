"""``run`` says at start when only the command line can approve: manual policy and no Telegram
approver (no bot token or no admin ids); not otherwise."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from core.config import Secrets, Settings
from core.runtime.banner import startup_lines


class _Ctx:
    def __init__(self, secrets: Secrets) -> None:
        self.secrets = secrets
        self.out_dir = None


def _settings(policy: str) -> Settings:
    return Settings.model_validate({"mode": "demo", "approval": {"policy": policy}})


def _lines(policy: str, token: str | None, admins: str) -> list[str]:
    secrets = Secrets.model_construct(telegram_bot_token=SecretStr(token) if token is not None else None,
                                      telegram_admin_ids=admins)
    return [ln for ln in startup_lines(_settings(policy), [], _Ctx(secrets)) if ln.startswith("approvals:")]


@pytest.mark.parametrize(("token", "admins"), [(None, ""), ("123:abc", ""), (None, "1001"), ("  ", "1001")])
def test_manual_without_an_approver_names_the_cli(token, admins) -> None:
    [line] = _lines("manual", token, admins)
    assert "no Telegram approver" in line
    for command in ("pending --mode demo", "approve ID [--half] --mode demo", "reject ID --mode demo"):
        assert command in line


@pytest.mark.parametrize(("policy", "token", "admins"), [
    ("manual", "123:abc", "1001"), ("auto", None, ""), ("auto_if", None, "")])
def test_no_line_otherwise(policy, token, admins) -> None:
    assert _lines(policy, token, admins) == []
