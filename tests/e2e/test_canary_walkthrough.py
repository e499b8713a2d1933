"""docs/canary.md's walk-through, run as written: a canary on 20 %, labels, decision, switch.

The bash blocks of the section run in order in one shell from the checkout, with two
substitutions only: the server's port (8080 may be taken on a shared machine) and TMPDIR,
so that the walk-through's scratch directory is this test's.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from testkit import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _walkthrough() -> str:
    text = (ROOT / "docs" / "canary.md").read_text(encoding="utf-8")
    section = text[text.index("## Walk-through") :]
    return "\n".join(re.findall(r"```bash\n(.*?)```", section, re.S))


def _untracked() -> str:
    out = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout


def test_the_canary_walkthrough_runs_as_written_in_a_scratch_directory(tmp_path: Path) -> None:
    if not (ROOT / ".venv" / "bin" / "activate").exists() or not (ROOT / ".git").exists():
        pytest.skip("needs the checkout's .venv (make install) and git")
    script = _walkthrough()
    port = free_port()
    script = script.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    script = script.replace("--canary 20% &", f"--canary 20% --port {port} &")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLCYCLE_"))}
    env["TMPDIR"] = str(tmp_path)
    before = _untracked()
    res = subprocess.run(
        ["bash", "-e", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=1500,
    )  # fmt: skip
    assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
    out = res.stdout
    assert "decision   continue: not enough evidence" in out
    assert re.search(r"acted      canary_step v2 \(audit run \w+\)", out)
    assert re.search(r"acted      promote v2 \(audit run \w+\)", out)
    assert "canary_step v1 → v2" in out and "promote  v1 → v2" in out
    assert "x-model-version: 2" in out.lower()
    # Everything it made is in its scratch directory; the checkout is as it was.
    (scratch,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert {"mlflow.db", "labels.csv", "traffic.csv", "inference-log"} <= {
        p.name for p in scratch.iterdir()
    }
    assert _untracked() == before
