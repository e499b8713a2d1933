"""The core install alone: no extras, a fresh venv, and the lifecycle up to promotion works.

Installs the package from a copy of this checkout (so no build output lands in the tree)
into a venv under ``tmp_path``; pip's cache keeps it to a minute or two.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer

REPO = Path(__file__).resolve().parents[2]
#: What the extras bring and the core must not: the ONNX fast path, S3, Evidently (uvicorn
#: comes with mlflow itself).
EXTRA_ONLY = ["skl2onnx", "onnx", "onnxruntime", "boto3", "botocore", "evidently"]


def _venv_python(root: Path) -> Path:
    return root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _site_packages_bytes(python: Path) -> int:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    site = Path(out.stdout.strip())
    return sum(p.stat().st_size for p in site.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a cold pip install alone can take ten minutes on a busy runner
def test_the_core_install_trains_registers_promotes_and_shows_history(tmp_path: Path) -> None:
    src = tmp_path / "src-copy"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = _venv_python(env_dir)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(src)],
        check=True,
        timeout=1200,
    )

    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    found = subprocess.run(
        [str(python), "-c", probe, *EXTRA_ONLY], capture_output=True, text=True, check=True
    )
    size = _site_packages_bytes(python)
    print(f"core install: site-packages {size / 1e6:.0f} MB")
    assert found.stdout.strip() == "[]"

    data = tmp_path / "cancer.csv"
    load_breast_cancer(as_frame=True).frame.to_csv(data, index=False)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"}

    def mlcycle(*args: str) -> str:
        res = subprocess.run(
            [str(python), "-m", "mlcycle", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=600,
        )
        assert res.returncode == 0, res.stderr[-3000:]
        assert "Traceback" not in res.stderr
        return res.stdout

    trained = json.loads(
        mlcycle("train", "--data", str(data), "--target", "target", "--model", "linear", "--json")
    )
    assert trained["onnx_exact"] is False  # no onnx extra: the copy is skipped, not an error
    assert "registered churn version 1" in mlcycle(
        "register", "--run-id", trained["run_id"], "--name", "churn"
    )
    assert "promoted   churn version 1" in mlcycle("promote", "churn", "--version", "1")
    trail = json.loads(mlcycle("history", "churn", "--json"))
    assert ("promote", "1") in [(e["action"], e["to"]) for e in trail]
