"""``python -m mlcycle``: the same CLI as the ``mlcycle`` entry point."""

from mlcycle.cli import cli

if __name__ == "__main__":
    cli(prog_name="mlcycle")
