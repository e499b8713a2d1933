"""Read docker-compose.yml as compose would, without a Docker engine: YAML, ``.env``-style
interpolation (``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``, ``$$``) and each service's
command as an argv, so tests can parse it with the real CLI and run it natively."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable substitution over strings, lists and mappings."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        got = env.get(name)
        if op in (":-", "-") and not got:
            return arg or ""
        if op in (":?", "?") and not got:
            raise KeyError(f"{name}: {arg}")
        return got or ""

    parts = value.split("$$")
    return "$".join(_VAR.sub(one, p) for p in parts)


def variables(text: str) -> set[str]:
    """Names of the variables a text references."""
    return {m.group(1) for m in _VAR.finditer(text)}


def load(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose document, interpolated with ``env`` (default: ``.env.example``)."""
    doc = yaml.safe_load(COMPOSE.read_text())
    return interpolate(doc, read_env_file() if env is None else env)


def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def command(service: str, env: dict[str, str] | None = None) -> list[str]:
    """A service's command as an argv (compose accepts a list or a shell-like string)."""
    import shlex

    cmd = load(env)["services"][service]["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def environment(service: str, env: dict[str, str] | None = None) -> dict[str, str]:
    raw_env = load(env)["services"][service].get("environment") or {}
    if isinstance(raw_env, list):
        raw_env = dict(item.split("=", 1) for item in raw_env)
    return {k: str(v) for k, v in raw_env.items()}
