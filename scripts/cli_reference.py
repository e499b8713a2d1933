"""Write docs/cli.md from the CLI itself, so the reference cannot drift from the code.

python scripts/cli_reference.py            # rewrite docs/cli.md
python scripts/cli_reference.py --check    # exit 1 when docs/cli.md is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlcycle.cli import cli

WIDTH = 88
OUT = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def render() -> str:
    parts = [
        "# CLI reference",
        "",
        "Generated from the code by `python scripts/cli_reference.py`; a test keeps it current.",
        "Domain errors (bad data, unknown model, refused gate, …) exit with status 1 and one",
        "line naming the problem; usage errors exit with status 2.",
        "",
    ]
    root = cli.make_context("mlcycle", [], resilient_parsing=True, terminal_width=WIDTH)
    parts += ["```text", cli.get_help(root), "```", ""]
    for name in sorted(cli.commands):
        command = cli.commands[name]
        # The parent carries the group's context settings (-h/--help), as on the command line.
        ctx = click.Context(command, info_name=name, parent=root, terminal_width=WIDTH)
        parts += [f"## `mlcycle {name}`", "", "```text", command.get_help(ctx), "```", ""]
    return "\n".join(parts)


def main() -> None:
    text = render()
    if "--check" in sys.argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python scripts/cli_reference.py", file=sys.stderr)
            sys.exit(1)
        return
    OUT.write_text(text)


if __name__ == "__main__":
    main()
