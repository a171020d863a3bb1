"""Load settings: ``config/default.yaml`` <- ``--config FILE`` overlay <- ``QUANT_*`` env.

Environment overrides use the prefix ``QUANT_`` and ``__`` between nested keys,
e.g. ``QUANT_RISK__ACCOUNT_VALUE=50000`` or ``QUANT_APPROVAL__POLICY=auto``;
values are parsed as YAML scalars/flow collections (``[SPY, QQQ]``).

Any problem raises :class:`ConfigError` naming the file (or env var), the key and
what was expected; the CLI prints it on one line and exits with status 2.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from core.config.model import Settings

ENV_PREFIX = "QUANT_"
DEFAULT_FILE = Path(__file__).resolve().parents[2] / "config" / "default.yaml"


class ConfigError(Exception):
    """A configuration problem, with a one-line human message."""


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: config file is not UTF-8 text (byte {exc.object[exc.start]:#04x} "
                          f"at offset {exc.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level, got {type(data).__name__}")
    return data


def _merge(base: dict[str, Any], over: Mapping[str, Any], origin: str, sources: dict[str, str],
           prefix: str = "") -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value, origin, sources, f"{path}.")
        else:
            out[key] = value
            sources[path] = origin
        sources.setdefault(path, origin)
    return out


def _env_overrides(environ: Mapping[str, str]) -> list[tuple[str, dict[str, Any]]]:
    result = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__") if p]
        if not parts:
            continue
        try:
            value = yaml.safe_load(environ[name])
        except yaml.YAMLError:
            raise ConfigError(f"env {name}: not a valid value") from None
        tree: dict[str, Any] = {}
        node = tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
        result.append((name, tree))
    return result


def _origin_of(loc: tuple[Any, ...], sources: dict[str, str], layers: list[str]) -> str:
    """The most recent layer (default file < --config file < env) that set the key, or, for a
    section-level error, any key under it."""
    parts = [str(p) for p in loc]
    while parts:
        key = ".".join(parts)
        hits = [o for k, o in sources.items() if k == key or k.startswith(key + ".")]
        if hits:
            return max(hits, key=lambda o: layers.index(o) if o in layers else -1)
        parts.pop()
    return layers[0] if layers else "defaults"


def _describe(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key (not a setting; check spelling against config/default.yaml)"
    if kind == "missing":
        return "missing required key"
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{msg}; got {err.get('input')!r}" if "input" in err and not isinstance(err["input"], dict) else msg


def load_settings(config_file: str | os.PathLike[str] | None = None,
                  environ: Mapping[str, str] | None = None,
                  default_file: Path = DEFAULT_FILE, *, mode: str | None = None) -> Settings:
    """Return validated settings or raise ConfigError (one line, names file and key).
    ``mode`` (the CLI's ``--mode``) overrides every layer."""
    environ = os.environ if environ is None else environ
    sources: dict[str, str] = {}
    layers = [str(default_file)]
    merged = _merge({}, _read_yaml(default_file), str(default_file), sources)
    if config_file is not None:
        path = Path(config_file)
        layers.append(str(path))
        merged = _merge(merged, _read_yaml(path), str(path), sources)
    for name, tree in _env_overrides(environ):
        layers.append(f"env {name}")
        merged = _merge(merged, tree, f"env {name}", sources)
    if mode is not None:
        merged["mode"] = mode
        layers.append("--mode")
        sources["mode"] = "--mode"
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err.get("loc", ()) if not str(p).startswith("function-"))
        extra = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        if not loc:  # a rule across keys (the mode table): the message names the keys itself
            raise ConfigError(f"configuration refused: {_describe(err)}{extra}") from None
        key = ".".join(str(p) for p in loc)
        raise ConfigError(f"{_origin_of(loc, sources, layers)}: key '{key}': {_describe(err)}{extra}") from None
