"""Core modules import where ``fcntl`` does not exist (Windows)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import textwrap

import mlcycle

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(mlcycle.__path__, "mlcycle.")
    if m.name != "mlcycle.__main__"
)


def _import_without_fcntl(names: list[str]) -> dict[str, str]:
    """Import each module in a fresh interpreter where ``import fcntl`` raises; failures."""
    code = textwrap.dedent(
        """
        import importlib, json, sys
        sys.modules["fcntl"] = None  # `import fcntl` now raises ImportError, as on Windows
        failures = {}
        for name in sys.argv[1:]:
            try:
                importlib.import_module(name)
            except Exception as exc:
                failures[name] = f"{type(exc).__name__}: {exc}"
        print(json.dumps(failures))
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


def test_every_mlcycle_module_imports_with_fcntl_unavailable() -> None:
    assert {"mlcycle.register.lock", "mlcycle.monitoring.loop", "mlcycle.cli"} <= set(MODULES)
    assert _import_without_fcntl(MODULES) == {}


def test_the_check_catches_a_module_that_imports_fcntl() -> None:
    # fcntl itself stands in for a module that imports it; shlex needs nothing blocked.
    failures = _import_without_fcntl(["fcntl", "shlex"])
    assert list(failures) == ["fcntl"]
