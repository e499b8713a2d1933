"""Every environment variable is declared once, in mlcycle.config; the library builds no
Settings of its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mlcycle
from mlcycle import config

SRC = Path(mlcycle.__file__).parent
#: Modules another change owns for now (the CLI becomes a package; its search-worker command
#: still reads MLFLOW_TRACKING_URI itself). Remove an entry when the module reads config.
# The CLI's composition root sets MLflow's own process defaults (progress bars, log level).
PENDING = {"cli/_common.py"}


def _env_reads(path: Path) -> list[int]:
    """Lines reading one variable: ``os.environ.get``/``[...]``/``setdefault``, ``os.getenv``."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        target = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("get", "setdefault"):
                target = node.func.value
            elif node.func.attr == "getenv":
                lines.append(node.lineno)
                continue
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            target = node.value
        if isinstance(target, ast.Attribute) and target.attr == "environ":
            lines.append(node.lineno)
    return lines


def test_no_module_but_config_reads_an_environment_variable() -> None:
    offenders = [
        f"{rel}:{line}"
        for path in sorted(SRC.rglob("*.py"))
        if (rel := path.relative_to(SRC).as_posix()) not in {"config.py", *PENDING}
        for line in _env_reads(path)
    ]
    assert not offenders, "declare the variable in mlcycle.config:\n" + "\n".join(offenders)


def test_the_scan_sees_each_way_of_reading(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import os\n"
        "a = os.environ.get('A')\n"
        "b = os.environ['B']\n"
        "c = os.getenv('C')\n"
        "os.environ.setdefault('D', '1')\n"
        "env = dict(os.environ)\n"
    )
    assert _env_reads(module) == [2, 3, 4, 5]


def test_no_library_module_builds_settings() -> None:
    roots = {"config.py", "cli.py", "project_experiment.py"}  # composition roots
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel in roots or rel.startswith("cli/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in ("Settings", "load_settings", "model_validate"):
                    offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, "take settings as an argument:\n" + "\n".join(offenders)


def test_env_var_reads_its_value_or_default(monkeypatch: pytest.MonkeyPatch) -> None:
    var = config.EnvVar("MLCYCLE_TEST_ONLY", "fallback")
    monkeypatch.delenv(var.name, raising=False)
    assert var.get() == "fallback" and not var.is_set()
    monkeypatch.setenv(var.name, "")
    assert var.get() == "fallback" and not var.is_set()
    var.set("given")
    assert var.get() == "given" and var.is_set()
    var.unset()
    assert var.get() == "fallback"


def test_each_declared_variable_is_named_as_its_constant() -> None:
    declared = {k: v for k, v in vars(config).items() if isinstance(v, config.EnvVar)}
    assert declared, "no EnvVar declared"
    assert all(k == v.name for k, v in declared.items())
