"""No module of mlcycle is over ~400 lines: a module that grows past it holds two concerns."""

from __future__ import annotations

from pathlib import Path

import mlcycle

SRC = Path(mlcycle.__file__).parent
LIMIT = 400


def _sizes() -> dict[str, int]:
    return {
        str(p.relative_to(SRC)): len(p.read_text(encoding="utf-8").splitlines())
        for p in SRC.rglob("*.py")
    }


def test_no_module_is_over_the_limit() -> None:
    over = {name: n for name, n in _sizes().items() if n > LIMIT}
    assert not over, over


def test_the_split_packages_keep_their_modules_small() -> None:
    sizes = _sizes()
    for package in (
        "register/",
        "demo/",
        "stack/",
        "cli/",
        "serve/protocol/",
        "inference_log/",
        "batch/",
    ):
        mine = {k: v for k, v in sizes.items() if k.startswith(package)}
        assert len(mine) > 2 and max(mine.values()) <= LIMIT, mine
