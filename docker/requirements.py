"""Print the requirements of ``pyproject.toml``'s ``[project]`` with the given extras, one a line.

Used by the images (``Dockerfile``, ``docker/stack.Dockerfile``) to install mlcycle's
dependencies from ``pyproject.toml`` alone, in a layer that a source change does not rebuild;
the wheel then goes in with ``--no-deps``. The lines are the core ``dependencies`` followed by
each extra's, with the project's references to its own extras (``mlcycle[onnx]``) expanded, so
``pip install -r`` installs what ``pip install 'mlcycle[EXTRAS]'`` would, minus mlcycle itself.
Standard library only: it runs in the bare base image.

Usage: ``python requirements.py PYPROJECT [EXTRA,EXTRA,...]``
"""

from __future__ import annotations

import re
import sys
import tomllib


def requirements(pyproject: dict, extras: list[str]) -> list[str]:
    """The core dependencies plus those of ``extras`` (self-references expanded), deduplicated."""
    project = pyproject["project"]
    optional = project.get("optional-dependencies", {})
    own = re.compile(rf"^{re.escape(project['name'])}\s*\[([^\]]*)\]\s*$", re.I)
    todo, seen = list(extras), set()
    out = list(project.get("dependencies", []))
    while todo:
        extra = todo.pop(0)
        if extra in seen:
            continue
        if extra not in optional:
            raise SystemExit(f"pyproject.toml has no extra {extra!r}")
        seen.add(extra)
        for req in optional[extra]:
            match = own.match(req)
            if match:
                todo += [e.strip() for e in match.group(1).split(",") if e.strip()]
            else:
                out.append(req)
    return list(dict.fromkeys(out))


def main(argv: list[str]) -> int:
    with open(argv[1], "rb") as fh:
        pyproject = tomllib.load(fh)
    extras = [e for e in (argv[2] if len(argv) > 2 else "").split(",") if e]
    print("\n".join(requirements(pyproject, extras)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
