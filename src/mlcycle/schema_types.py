"""The one map from MLflow column types to numpy, pandas and Arrow dtypes.

API: :data:`DTYPE_NAMES`, :data:`NUMPY_DTYPES`, :data:`SUPPORTED_KINDS`.

Serving (:mod:`mlcycle.serve.protocol`, :mod:`mlcycle.serve.model`), batch scoring and the
inference log read column types from a model signature; each converts with these maps, so a
type mlcycle accepts means the same dtype everywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: MLflow ``DataType`` name → the dtype name numpy, pandas (``astype``) and Arrow
#: (``pa.type_for_alias``) all read.
DTYPE_NAMES: dict[str, str] = {
    "long": "int64",
    "integer": "int32",
    "double": "float64",
    "float": "float32",
    "string": "string",
    "boolean": "bool",
}

#: MLflow ``DataType`` name → the numpy scalar type of a request column (strings stay objects).
NUMPY_DTYPES: dict[str, Any] = {
    "long": np.int64,
    "integer": np.int32,
    "double": np.float64,
    "float": np.float32,
    "string": np.object_,
    "boolean": np.bool_,
}

#: The column types mlcycle serves, scores in batch and logs.
SUPPORTED_KINDS = frozenset(DTYPE_NAMES)
