"""The docs' walk-throughs run as written and leave nothing untracked in the checkout."""

from __future__ import annotations

import fnmatch
import itertools
import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SCRATCH = 'cd "$(mktemp -d)"'
BLOCK = r"```bash\n(.*?)```"
#: What mlcycle and MLflow write in the working directory by default.
DEFAULT_OUTPUTS = [
    "mlflow.db", "mlflow.db.mlcycle-0123456789abcdef.lock", "mlruns/0/meta.yaml",
    "mlartifacts/1/model/MLmodel", "inference-log/model=churn/part-0.parquet",
    "monitoring-reports/churn/report.html", "demo-output/mlflow.db",
]  # fmt: skip
#: Outputs a reference example names on the command line for the user's own data: like the
#: user's data files, they are the user's to keep (``make clean`` must not delete them).
USER_CHOSEN = {"scored/"}


def bash_blocks(path: Path, section: str | None = None) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if section is not None:
        start = text.index(section)
        end = text.find("\n## ", start + len(section))
        text = text[start : end if end != -1 else None]
    return re.findall(BLOCK, text, re.S)


def _written_files() -> dict[str, str]:
    """Files the docs' commands write (``-o``/``--output``) outside a scratch directory."""
    found: dict[str, str] = {}
    for doc in DOCS:
        # A section that moved to a scratch directory stays there: its blocks share a shell;
        # the README's tour runs in an empty directory of the user's.
        sections = doc.read_text(encoding="utf-8").split("\n## ")
        blocks = [
            b
            for sec in sections
            if SCRATCH not in sec and "In an empty directory" not in sec
            for b in re.findall(BLOCK, sec, re.S)
        ]
        for block in blocks:
            tokens = shlex.split(block.replace("\\\n", " "), comments=True)
            for flag, path in itertools.pairwise(tokens):
                if flag in ("-o", "--output") and not path.startswith(("/", "$", "s3:")):
                    found[path] = doc.name
    return found


def _clean_patterns() -> list[str]:
    make = (ROOT / "Makefile").read_text()
    line = re.search(r"^clean:\n((?:\t.*\n)+)", make, re.M)
    assert line is not None
    return line.group(1).replace("\\\n", " ").split()[2:]


def test_the_check_sees_what_a_walkthrough_writes_outside_a_scratch_directory() -> None:
    written = _written_files()
    # training.md's `mlcycle predict ... --output scored/` writes in the working directory.
    assert "scored/" in written
    # canary.md, bring-your-own-model.md and operations.md work in a scratch directory.
    assert not {"churn.csv", "traffic.csv", "data.csv"} & set(written)


@pytest.mark.parametrize("path", sorted({*_written_files(), *DEFAULT_OUTPUTS} - USER_CHOSEN))
def test_what_a_walkthrough_writes_in_the_checkout_is_ignored_and_cleaned(path: str) -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0, f"{path} is not in .gitignore"
    parts = Path(path).parts
    heads = [str(Path(*parts[: i + 1])) for i in range(len(parts))]
    assert any(fnmatch.fnmatch(h, p) for h in heads for p in _clean_patterns()), (
        f"make clean leaves {path}"
    )


def test_the_canary_walkthrough_sets_every_variable_and_file_it_uses() -> None:
    script = "\n".join(bash_blocks(ROOT / "docs" / "canary.md", "## Walk-through"))
    assert script.splitlines()[:2] == [". .venv/bin/activate", SCRATCH]
    for name in set(re.findall(r"\$([A-Z_][A-Z0-9_]*)", script)):
        assert re.search(rf"^{name}=", script, re.M), f"${name} is used but never set"
    for name in set(re.findall(r"[\w-]+\.csv", script)):
        made = re.search(rf"(-o|--output) {name}|open\(\"{name}\", \"w\"", script)
        assert made is not None, f"{name} is read but not made by the walk-through"
        first = script.index(name)
        assert made.start() <= first < made.end(), f"{name} is used before it is made"
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
