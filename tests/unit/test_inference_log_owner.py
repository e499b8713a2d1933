"""One module owns the inference log's contract: ``grep`` finds no second copy of it."""

from __future__ import annotations

import re
from pathlib import Path

import mlcycle
from mlcycle import inference_log

SRC = Path(mlcycle.__file__).resolve().parent
#: The module of the package that declares the schema and the partition layout.
OWNER = "inference_log/schema.py"
#: A tuple, list or set literal of two or more strings (after an optional ``*unpacked,``).
LITERAL = re.compile(
    r"""[(\[{]\s*(?:\*[\w.]+\s*,\s*)?(?:["'][^"'\n]*["']\s*,\s*)+["'][^"'\n]*["']\s*,?\s*[)\]}]"""
)


def listings() -> dict[str, list[str]]:
    """Bookkeeping names in literals that list three or more of them (a schema), by file.

    Two names together are a join key (``request_id`` + ``record_index``), not a schema.
    """
    names = set(inference_log.BOOKKEEPING_COLUMNS)
    out: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        for match in LITERAL.finditer(path.read_text(encoding="utf-8")):
            found = [n for n in re.findall(r"""["']([^"']*)["']""", match.group()) if n in names]
            if len(found) >= 3 or (found and match.group()[1:].lstrip().startswith("*")):
                out.setdefault(path.relative_to(SRC).as_posix(), []).extend(found)
    return out


def test_the_bookkeeping_columns_are_listed_once_in_the_inference_log_schema() -> None:
    found = listings()
    assert list(found) == [OWNER]
    assert sorted(found[OWNER]) == sorted(inference_log.BOOKKEEPING_COLUMNS)


def test_no_module_builds_or_parses_the_partition_layout_but_the_inference_log_schema() -> None:
    parsers = [
        path.relative_to(SRC).as_posix()
        for path in SRC.rglob("*.py")
        if re.search(r"""split\(\s*["']=["']""", path.read_text(encoding="utf-8"))
        or "model={" in path.read_text(encoding="utf-8")
    ]
    assert parsers == [OWNER]


def test_monitoring_and_serving_share_the_reader_and_writer() -> None:
    from mlcycle.monitoring import Window, inputs, read_inference_log
    from mlcycle.serve import app

    assert read_inference_log is inference_log.read_inference_log
    assert Window is inference_log.Window
    assert inputs.scan_inference_log is inference_log.scan_inference_log
    assert app.InferenceLog is inference_log.InferenceLog
    assert not (SRC / "serve" / "inference_log.py").exists()
