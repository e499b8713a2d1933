"""No module of mlcycle is over ~400 lines: a module that grows past it holds two concerns."""

from __future__ import annotations

from pathlib import Path

import mlcycle

SRC = Path(mlcycle.__file__).parent
LIMIT = 400
#: Modules other changes are splitting; remove an entry when its split lands. The registry,
#: demo, stack and CLI packages are not listed: they were split already and must stay so.
PENDING = {
    "data.py",
    "train/core.py",
    "train/pipelines.py",
    "train/search.py",
}


def _sizes() -> dict[str, int]:
    return {
        str(p.relative_to(SRC)): len(p.read_text(encoding="utf-8").splitlines())
        for p in SRC.rglob("*.py")
    }


def test_no_module_is_over_the_limit_except_those_being_split() -> None:
    over = {name: n for name, n in _sizes().items() if n > LIMIT}
    assert set(over) <= PENDING, {k: v for k, v in over.items() if k not in PENDING}
    # A split that landed leaves the list too: a stale entry would let the module grow back.
    assert PENDING <= set(over), PENDING - set(over)


def test_the_split_packages_keep_their_modules_small() -> None:
    sizes = _sizes()
    for package in ("register/", "demo/", "stack/", "cli/"):
        mine = {k: v for k, v in sizes.items() if k.startswith(package)}
        assert len(mine) > 2 and max(mine.values()) <= LIMIT, mine
    assert not any(p.startswith(("register/", "demo/", "stack/", "cli/")) for p in PENDING)
