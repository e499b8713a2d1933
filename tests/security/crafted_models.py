"""Crafted model directories, as an attacker with EDIT on one registered model would log them.

Each crafted model's only effect when loaded is to write a marker file; a test passes when the
marker never appears. The directories carry a signature and mlcycle metadata so that every
check other than model trust passes: the attack reaches the loader, as it did on the server.
"""

from __future__ import annotations

import pickle
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ATTACKS = ("sklearn_loader_pickle", "code_loader", "cloudpickle_python_model")

_SIGNATURE = """\
signature:
  inputs: '[{"type": "double", "name": "x", "required": true}]'
  outputs: '[{"type": "double", "required": true}]'
  params: null
metadata:
  mlcycle:
    task: regression
    target: y
"""


class _Payload:
    """Unpickling this runs ``code``: what any pickle-family file can do."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (exec, (self.code,))


def _write_marker(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('pwned')"


@dataclass(frozen=True)
class Crafted:
    path: Path
    marker: Path


def craft(kind: str, root: Path, marker: Path) -> Crafted:
    """A model directory of attack ``kind`` whose loading writes ``marker``."""
    d = root / f"{kind}-{uuid.uuid4().hex[:6]}"
    d.mkdir(parents=True)
    code = _write_marker(marker)
    if kind == "sklearn_loader_pickle":
        # Only a python_function flavor: MLflow's sklearn loader then assumes pickle.
        (d / "model.pkl").write_bytes(pickle.dumps(_Payload(code)))
        flavor = (
            "  python_function:\n    loader_module: mlflow.sklearn\n    model_path: model.pkl\n"
        )
    elif kind == "code_loader":
        module = f"evil_{uuid.uuid4().hex[:8]}"  # fresh name: never cached in sys.modules
        (d / "code").mkdir()
        (d / "code" / f"{module}.py").write_text(
            code
            + "\n"
            + textwrap.dedent(
                """
                class _M:
                    def predict(self, df, params=None):
                        return df.iloc[:, 0] * 0


                def _load_pyfunc(path):
                    return _M()
                """
            )
        )
        flavor = f"  python_function:\n    loader_module: {module}\n    code: code\n"
    elif kind == "cloudpickle_python_model":
        (d / "python_model.pkl").write_bytes(pickle.dumps(_Payload(code)))
        flavor = (
            "  python_function:\n    loader_module: mlflow.pyfunc.model\n"
            "    python_model: python_model.pkl\n    cloudpickle_version: 3.1.1\n"
        )
    else:  # pragma: no cover - a typo in a test
        raise ValueError(kind)
    (d / "MLmodel").write_text(f"artifact_path: model\nflavors:\n{flavor}{_SIGNATURE}")
    return Crafted(d, marker)


def legit_model(root: Path, serialization_format: str = "skops") -> Path:
    """A real regression model on column ``x`` (target ``y``), saved as MLflow saves it."""
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    x = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    model = LinearRegression().fit(x, [1.0, 3.0, 5.0, 7.0])
    path = root / f"legit-{serialization_format}-{uuid.uuid4().hex[:6]}"
    mlflow.sklearn.save_model(
        model,
        str(path),
        serialization_format=serialization_format,
        signature=infer_signature(x, model.predict(x)),
        metadata={"mlcycle": {"task": "regression", "target": "y"}},
        pip_requirements=["scikit-learn", "skops"],
    )
    return path


def register_dir(client: Any, name: str, path: Path) -> str:
    """Log ``path`` as a run's artifacts and register it as a new version of ``name``."""
    import mlflow

    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(path), "model")
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    mv = client.create_model_version(
        name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    return str(mv.version)


def skops_bomb(model: Path, declared: int) -> Path:
    """Replace the first array of ``model``'s skops file by ``declared`` bytes of compressed zeros.

    The archive stays small (deflate shrinks zeros ~1000x) while its member declares
    ``declared`` bytes once inflated: a decompression bomb for whoever reads it.
    """
    import io
    import zipfile

    import numpy as np

    path = model / "model.skops"
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    target = next(name for name in members if name.endswith(".npy"))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (declared // 8,)}
    )
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            if name != target:
                archive.writestr(name, data)
        info = zipfile.ZipInfo(target)
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as member:
            member.write(header.getvalue())
            chunk = bytes(1 << 20)
            for _ in range(declared // len(chunk)):
                member.write(chunk)
    return path
