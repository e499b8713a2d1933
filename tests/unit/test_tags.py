"""Every ``mlcycle.*`` tag key is spelled once, in :mod:`mlcycle.tags`."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import mlcycle
from mlcycle import tags

SRC = Path(mlcycle.__file__).parent
TOKEN = re.compile(r"mlcycle\.[A-Za-z_][A-Za-z0-9_.]*")
#: Modules another change owns for now; each still spells its keys (listed so the test names
#: them rather than skipping them silently). Remove an entry when its module imports the keys.
PENDING: set[str] = set()


def _is_python_name(token: str) -> bool:
    """``mlcycle.trust``, ``mlcycle.config.apply_tracking``: a module or attribute, not a tag."""
    parts = token.rstrip(".").split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            ids.add(id(first.value))
    return ids


def _tag_strings(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            for token in TOKEN.findall(node.value):
                if not _is_python_name(token):
                    found.append((node.lineno, token))
    return found


def test_no_module_spells_an_mlcycle_tag_key_outside_tags_py() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel == "tags.py" or rel in PENDING:
            continue
        offenders += [f"{rel}:{line}: {token}" for line, token in _tag_strings(path)]
    assert not offenders, "use the constants of mlcycle.tags:\n" + "\n".join(offenders)


def test_the_scan_finds_a_bare_tag_key(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        '"""Doc mentions mlcycle.task."""\n'
        "x = {'mlcycle.task': 1}\n"
        "y = f\"tags.`mlcycle.kind` = '{x}'\"\n"
        "z = 'see mlcycle.trust and mlcycle.config.apply_tracking'\n"
    )
    assert _tag_strings(module) == [(2, "mlcycle.task"), (3, "mlcycle.kind")]


def test_tag_keys_are_unique_and_namespaced() -> None:
    keys = {k: v for k, v in vars(tags).items() if k.startswith("MLCYCLE_")}
    assert all(v.startswith("mlcycle.") for v in keys.values())
    assert len(set(keys.values())) == len(keys)
