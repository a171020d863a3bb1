"""Config loading: layering, env overrides, and errors that name file, key and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ConfigError, load_settings
from core.config.secrets import Secrets


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "over.yaml"
    p.write_text(text)
    return p


def test_defaults_load_and_match_the_issue():
    s = load_settings(environ={})
    assert s.risk.risk_per_trade_pct == {"0dte": 2.0, "1dte": 3.0, "swing": 5.0}
    assert (s.risk.daily_loss_warn_pct, s.risk.daily_loss_halt_pct) == (4.0, 6.0)
    assert s.distribution.tiers["basic"].delay_s == 60 and s.distribution.tiers["free"].delay_s == 300
    assert s.approval.policy == "manual"
    assert s.strategies["gamma_0dte"].card_ttl_s == 90


def test_overlay_and_env_override(tmp_path):
    f = _write(tmp_path, "risk:\n  max_open_positions: 3\n")
    s = load_settings(f, environ={"QUANT_APPROVAL__POLICY": "auto", "QUANT_MARKET__SYMBOLS": "[SPY, QQQ]"})
    assert s.risk.max_open_positions == 3
    assert s.risk.max_same_direction == 3  # untouched default survives the overlay
    assert s.approval.policy == "auto"
    assert s.market.symbols == ["SPY", "QQQ"]


@pytest.mark.parametrize("text, key, words", [
    ("risk:\n  acount_value: 5\n", "risk.acount_value", "unknown key"),
    ("risk:\n  account_value: lots\n", "risk.account_value", "valid number"),
    ("approval:\n  policy: yolo\n", "approval.policy", "'manual', 'auto' or 'auto_if'"),
    ("strategies:\n  new_one:\n    enabled: true\n", "strategies.new_one.window", "missing"),
    ("risk:\n  daily_loss_warn_pct: 7\n", "risk", "below daily_loss_halt_pct"),
])
def test_bad_values_name_file_key_and_expectation(tmp_path, text, key, words):
    f = _write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_settings(f, environ={})
    msg = str(exc.value)
    assert str(f) in msg and f"'{key}" in msg and words in msg
    assert "\n" not in msg


def test_env_error_names_the_variable():
    with pytest.raises(ConfigError, match=r"env QUANT_RISK__MAX_OPEN_POSITIONS: key 'risk.max_open_positions'"):
        load_settings(environ={"QUANT_RISK__MAX_OPEN_POSITIONS": "many"})


def test_unparseable_and_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(_write(tmp_path, "a: [1, 2\n"), environ={})
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.yaml", environ={})
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(_write(tmp_path, "- 1\n- 2\n"), environ={})


def test_secrets_are_masked_and_never_in_repr(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-very-secret")
    monkeypatch.setenv("TELEGRAM_ADMIN_IDS", "11, 22")
    s = Secrets(_env_file=None)
    assert "sk-very-secret" not in repr(s) and "sk-very-secret" not in str(s.masked())
    assert s.masked()["ANTHROPIC_API_KEY"] == "***set***"
    assert s.admin_ids() == frozenset({11, 22})


def test_bad_admin_ids_rejected(monkeypatch):
    monkeypatch.setenv("TELEGRAM_ADMIN_IDS", "11,bob")
    with pytest.raises(ValueError, match="integer user ids"):
        Secrets(_env_file=None)


def test_default_yaml_documents_every_setting():
    """Every leaf of the settings model appears in default.yaml, and every key there has a comment
    somewhere above it in its section (the file is the documentation)."""
    import yaml

    from core.config.loader import DEFAULT_FILE
    from core.config.model import Settings

    data = yaml.safe_load(DEFAULT_FILE.read_text())
    assert set(data) == set(Settings.model_fields)
    for section, model_field in Settings.model_fields.items():
        ann = model_field.annotation
        if hasattr(ann, "model_fields"):
            assert set(data[section]) == set(ann.model_fields), section
