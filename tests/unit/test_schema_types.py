"""One map from MLflow column types to dtypes, and it agrees with MLflow's own."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from mlflow.types import DataType

import mlcycle
from mlcycle.schema_types import DTYPE_NAMES, NUMPY_DTYPES, SUPPORTED_KINDS

SRC = Path(mlcycle.__file__).parent


@pytest.mark.parametrize("kind", sorted(SUPPORTED_KINDS))
def test_each_type_maps_to_the_dtype_mlflow_gives_it(kind: str) -> None:
    mlflow_numpy = DataType[kind].to_numpy()
    if kind == "string":
        assert NUMPY_DTYPES[kind] is np.object_
        assert pa.type_for_alias(DTYPE_NAMES[kind]) == pa.string()
        return
    assert np.dtype(NUMPY_DTYPES[kind]) == mlflow_numpy
    assert np.dtype(DTYPE_NAMES[kind]) == mlflow_numpy
    assert pa.type_for_alias(DTYPE_NAMES[kind]).to_pandas_dtype() == mlflow_numpy.type


def _type_maps(path: Path) -> list[int]:
    """Lines of dict literals that map MLflow type names to dtype names or numpy types."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Dict):
            continue
        keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
        plain = all(isinstance(v, ast.Constant | ast.Attribute) for v in node.values)
        if {"long", "double"} <= keys and plain:
            lines.append(node.lineno)
    return lines


def test_no_second_copy_of_the_type_map() -> None:
    offenders = [
        f"{rel}:{line}"
        for path in sorted(SRC.rglob("*.py"))
        if (rel := path.relative_to(SRC).as_posix()) != "schema_types.py"
        for line in _type_maps(path)
    ]
    assert not offenders, "use mlcycle.schema_types:\n" + "\n".join(offenders)


def test_the_scan_sees_a_copy(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('import numpy as np\nA = {"long": np.int64, "double": np.float64}\n')
    assert _type_maps(module) == [2]


def test_the_inference_log_writes_each_type_as_the_map_says(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from mlcycle.inference_log import InferenceLog, LogItem

    kinds = tuple((f"c_{kind}", kind) for kind in sorted(SUPPORTED_KINDS))
    samples = {"string": ["a", None], "boolean": [True, False]}
    columns = {
        name: np.array(samples.get(kind, [1, 2]), dtype=NUMPY_DTYPES[kind]) for name, kind in kinds
    }
    log = InferenceLog(str(tmp_path))
    log.append(
        LogItem(
            request_id="r",
            timestamp_us=1_700_000_000_000_000,
            model_name="m",
            model_version="1",
            role="champion",
            columns=columns,
            kinds=kinds,
            predictions=np.array([0, 1]),
        )
    )
    log.close()
    (path,) = tmp_path.rglob("*.parquet")
    schema = pq.read_schema(path)
    for name, kind in kinds:
        assert schema.field(name).type == pa.type_for_alias(DTYPE_NAMES[kind]), kind
