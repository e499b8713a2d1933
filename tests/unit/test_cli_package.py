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
