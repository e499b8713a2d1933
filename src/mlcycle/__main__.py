"""``python -m mlcycle``: the same CLI as the ``mlcycle`` entry point."""

from mlcycle.cli import main

if __name__ == "__main__":
    main(prog_name="mlcycle")
