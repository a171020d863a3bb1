"""The CLI's exit-2 contract: bad input, a bad configuration or an unreachable resource is exit
status 2 with exactly ONE line on stderr (``error: ...``) and never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis

import main

ROOT = Path(main.__file__).resolve().parent
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
NOT_UTF8 = b"\xff\xfe mode: demo"


def _one_error_line(code: int, err: str, *needles: str) -> str:
    assert "Traceback" not in err, err
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("error: ") and line.strip() != "error:", line
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def _run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main.main(argv)
    return code, capsys.readouterr().err


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("QUANT_") or name == "REDIS_URL":
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize("command", [["check-config"], ["demo"]])
def test_config_file_not_utf8(tmp_path, capsys, clean_env, command):
    cfg = tmp_path / "latin.yaml"
    cfg.write_bytes(NOT_UTF8)
    argv = [*command, "--config", str(cfg)] + (["--out", str(tmp_path / "out")] if command == ["demo"] else [])
    code, err = _run_main(argv, capsys)
    _one_error_line(code, err, str(cfg), "UTF-8")


def test_analytics_chain_file_not_utf8(tmp_path, capsys, clean_env):
    chain = tmp_path / "chain.json"
    chain.write_bytes(NOT_UTF8)
    code, err = _run_main(["analytics", str(chain)], capsys)
    _one_error_line(code, err, str(chain), "UTF-8")


@pytest.mark.parametrize("day", ["1990-01-02", "2090-01-03"])
def test_demo_date_out_of_range(tmp_path, capsys, clean_env, day):
    out = tmp_path / "out"
    code, err = _run_main(["demo", "--date", day, "--out", str(out)], capsys)
    _one_error_line(code, err, day, "out of range")
    assert not out.exists()  # refused before any work


def _unwritable_dirs(tmp_path: Path) -> list[Path]:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    found = [blocker / "out"]
    if Path("/proc").is_dir():
        found.append(Path("/proc/x"))
    return found


def test_demo_out_folder_not_writable(tmp_path, capsys, clean_env):
    for out in _unwritable_dirs(tmp_path):
        code, err = _run_main(["demo", "--out", str(out)], capsys)
        _one_error_line(code, err, str(out))


@pytest.mark.parametrize("url, secret", [
    ("garbage", None),
    ("redis://admin:s3cr3t-pw@[bad", "s3cr3t-pw"),
    ("redis://admin:s3cr3t-pw@127.0.0.1:notaport/0", "s3cr3t-pw"),
    ("redis://admin:s3cr3t-pw", "s3cr3t-pw"),  # the "@host" forgotten
    ("redis://127.0.0.1:6379/0?password=s3cr3t-pw&db=zz", "s3cr3t-pw"),
])
def test_status_with_unparsable_redis_url(capsys, clean_env, url, secret):
    clean_env.setenv("REDIS_URL", url)
    code, err = _run_main(["status"], capsys)
    line = _one_error_line(code, err, "Redis URL")
    if secret:
        assert secret not in line


def test_second_run_with_metrics_port_taken(tmp_path):
    prefix = f"tcliexit{uuid.uuid4().hex[:10]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANT_") and k != "REDIS_URL"}
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env.update(QUANT_METRICS__PORT=str(port), QUANT_METRICS__ENABLED="true", REDIS_URL=TEST_REDIS_URL,
                   QUANT_REDIS__URL=TEST_REDIS_URL, QUANT_REDIS__KEY_PREFIX=prefix,
                   QUANT_DEMO__OUT_DIR=str(tmp_path / "demo"))
        client = redis.Redis.from_url(TEST_REDIS_URL)
        try:
            proc = subprocess.run([sys.executable, "main.py", "run", "--mode", "demo"], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=90, check=False)
            leaked = list(client.scan_iter(match=f"{prefix}*", count=1000))
            for key in leaked:
                client.delete(key)
        finally:
            client.close()
    line = _one_error_line(proc.returncode, proc.stderr, str(port), "in use", "metrics.port",
                           "QUANT_METRICS__PORT")
    assert "running" not in proc.stderr and line
    assert leaked == []  # exited before touching Redis or starting any service
