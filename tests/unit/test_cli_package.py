"""The CLI package's shape: small modules, click only there, defaults declared by the stages."""

from __future__ import annotations

import ast
from pathlib import Path

import click
import pytest

from mlcycle.cli import cli
from mlcycle.cli._options import LibraryDefault

SRC = Path(__file__).resolve().parents[2] / "src" / "mlcycle"


def test_no_cli_module_is_over_400_lines() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in (SRC / "cli").glob("*.py")}
    assert {"__init__.py", "_common.py", "_options.py"} <= set(sizes)
    assert {name: n for name, n in sizes.items() if n > 400} == {}


def _imports_click(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        else:
            continue
        if any(m.split(".")[0] == "click" for m in modules):
            return True
    return False


def test_click_is_imported_only_under_mlcycle_cli() -> None:
    users = {str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if _imports_click(p)}
    assert users and all(u.startswith("cli/") for u in users), users


def _library_defaults() -> list[tuple[str, LibraryDefault]]:
    return [
        (name, param)
        for name, command in sorted(cli.commands.items())
        for param in command.params
        if isinstance(param, LibraryDefault)
    ]


def test_serve_and_server_take_their_defaults_from_the_stages() -> None:
    names = {(cmd, p.name) for cmd, p in _library_defaults()}
    assert {("serve", "max_rows"), ("serve", "port"), ("server", "workers")} <= names


@pytest.mark.parametrize(("command", "param"), _library_defaults(), ids=lambda x: str(x))
def test_an_option_left_out_is_none_and_its_help_shows_the_stage_default(
    command: str, param: LibraryDefault
) -> None:
    root = cli.make_context("mlcycle", [], resilient_parsing=True)
    ctx = click.Context(cli.commands[command], info_name=command, parent=root)
    # Left out, the option passes None: the stage's field default applies.
    assert param.get_default(ctx) is None
    record = param.get_help_record(ctx)
    assert record is not None and f"default: {param.default_of()}" in record[1]


_GC_PROBE = """
import atexit, gc, sys
full = []
gc.callbacks.append(lambda phase, info: phase == "stop" and info["generation"] == 2
                    and full.append(1))
atexit.register(lambda: print("GC", gc.get_freeze_count(), gc.get_threshold(), len(full),
                              file=sys.stderr))
from mlcycle.cli import cli, main
sys.argv = ["mlcycle", "history", "nothing-here"]
main() if sys.argv and {entry!r} == "main" else cli()
"""


def _gc_after(entry: str, tmp_path: Path) -> tuple[int, tuple[int, ...], int]:
    import re
    import subprocess
    import sys

    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    done = subprocess.run(
        [sys.executable, "-c", _GC_PROBE.format(entry=entry)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # the model does not exist: a clean error
    assert "nothing-here" in done.stderr
    found = re.search(r"GC (\d+) \((\d+), (\d+), (\d+)\) (\d+)", done.stderr)
    assert found, done.stderr
    frozen, t0, t1, t2, full = map(int, found.groups())
    return frozen, (t0, t1, t2), full


def test_the_executable_freezes_its_imports_once_it_has_a_client_and_restores_the_collector(
    tmp_path: Path,
) -> None:
    import gc

    frozen, thresholds, full = _gc_after("main", tmp_path)
    assert frozen > 100_000  # MLflow, pandas, SQLAlchemy: kept out of full collections
    assert thresholds == gc.get_threshold()
    # Called as a library (the group itself, as CliRunner calls it): the collector is theirs.
    frozen_lib, thresholds_lib, full_lib = _gc_after("cli", tmp_path)
    assert frozen_lib == 0 and thresholds_lib == gc.get_threshold()
    assert full < full_lib  # the imports' full collections are what the entry point spares
