"""Loading a model URI into a predictor with a fast path.

API: :class:`ModelRef`, :class:`Predictor`, :func:`resolve`, :func:`load_predictor`,
:func:`schema_from_mlmodel`.

A predictor takes validated numpy columns (see :mod:`mlcycle.serve.protocol`) and returns one
prediction per row. Classifiers that training verified against their ONNX copy
(``metadata.mlcycle.onnx``) run on onnxruntime, fed as
:func:`mlcycle.train.onnx_export.onnx_feeds` feeds them and labelled with
:func:`~mlcycle.train.onnx_export.labels_from_proba`; everything else runs sklearn's
``predict`` on a frame built like MLflow's. Every model passes :mod:`mlcycle.trust` before
anything in it is loaded: formats that can run code are refused unless ``allow_pickle``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlcycle import trust
from mlcycle.errors import ModelNotFound, ServingError, UntrustedModel
from mlcycle.extras import available
from mlcycle.proba import class_probabilities
from mlcycle.schema_types import SUPPORTED_KINDS
from mlcycle.serve.protocol import Column, InputSchema
from mlcycle.uris import (
    check_model_uri,
    model_uri,
    parse_model_uri,
    resolve_version,
    stage_name,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelRef:
    """Where a model URI points now.

    ``follow`` is the alias or stage a server keeps following (``None`` for a fixed version,
    a run or a path).
    """

    uri: str
    name: str
    version: str
    download_uri: str
    follow: str | None = None
    follow_kind: str | None = None  # "alias" or "stage"


def resolve(uri: str, client: Any) -> ModelRef:
    """Resolve ``uri`` to a registry version (``models:/NAME@alias``, ``/Stage``, ``/3``),
    a run model (``runs:/ID/path``) or a local directory.

    Raises:
        ModelNotFound: nothing matches.
        ConfigError: a ``models:/``/``runs:/`` URI with ``..`` path segments.
    """
    check_model_uri(uri)
    parsed = parse_model_uri(uri)
    if parsed:
        name, alias, ref = parsed
        stage = stage_name(ref) if ref else None
        if ref and not ref.isdigit() and stage is None:
            raise ModelNotFound(f"cannot resolve {uri}: unknown version or stage '{ref}'")
        try:
            if alias:
                v = str(resolve_version(client, name, alias=alias).version)
                return ModelRef(uri, name, v, model_uri(name, version=v), alias, "alias")
            if stage is not None:
                v = str(resolve_version(client, name, stage=stage).version)
                return ModelRef(uri, name, v, model_uri(name, version=v), stage, "stage")
            v = str(resolve_version(client, name, ref).version)
            return ModelRef(uri, name, v, model_uri(name, version=v))
        except Exception as exc:
            raise ModelNotFound(f"cannot resolve {uri}: {exc}") from exc
    if uri.startswith("runs:/"):
        run_id = uri[len("runs:/") :].split("/", 1)[0]
        return ModelRef(uri, f"run-{run_id[:8]}", run_id, uri)
    if uri.startswith("models:/"):
        # A logged model id (models:/m-...): MLflow 3's own URIs.
        return ModelRef(uri, uri[len("models:/") :], "1", uri)
    path = Path(uri.removeprefix("file://"))
    if not (path / "MLmodel").exists():
        raise ModelNotFound(f"'{uri}' is not a model URI and no MLmodel file is there")
    return ModelRef(uri, path.resolve().name, "local", str(path.resolve()))


def current_version(ref: ModelRef, client: Any) -> str | None:
    """The version ``ref``'s alias or stage points at now (``None`` if it is fixed or gone).

    Raises:
        Exception: the registry could not be asked (the caller keeps serving and counts a
            failed reload, so an unreachable registry shows in ``/metrics``).
    """
    if ref.follow is None:
        return None
    follow = {"alias": ref.follow} if ref.follow_kind == "alias" else {"stage": ref.follow}
    key = (ref.name, ref.follow)
    try:
        version = str(resolve_version(client, ref.name, **follow).version)
    except ModelNotFound as exc:
        # Said once when it goes missing (an ended canary leaves no @challenger for hours),
        # not on every reload poll; said again after it came back and went away.
        if key not in _MISSING:
            _MISSING.add(key)
            logger.warning("cannot look up %s of %s: %s", ref.follow, ref.name, exc)
        return None
    _MISSING.discard(key)
    return version


#: (model, alias or stage) whose lookup failed at the last poll, so it is logged once.
_MISSING: set[tuple[str, str]] = set()


def schema_from_mlmodel(mlmodel: Any) -> InputSchema:
    """The named input columns of a model's signature, with where missing values are allowed.

    A column allows missing values when the signature marks it optional or when mlcycle's
    pipeline imputes it (``metadata.mlcycle`` lists it; training data may have had gaps that
    the five-row signature example did not show).

    Raises:
        ServingError: no signature, or one with unnamed or nested inputs.
    """
    sig = mlmodel.signature
    if sig is None or sig.inputs is None or not sig.inputs.has_input_names():
        raise ServingError("the model has no signature with named inputs; mlcycle serve needs one")
    meta = (mlmodel.metadata or {}).get("mlcycle") or {}
    imputed = set(meta.get("numeric") or ()) | set(meta.get("categorical") or ())
    cols = []
    for spec in sig.inputs.inputs:
        kind = getattr(spec.type, "name", str(spec.type))
        if kind not in SUPPORTED_KINDS:
            raise ServingError(f"input '{spec.name}' has type {spec.type}; not supported here")
        allow = (not spec.required) or spec.name in imputed
        cols.append(Column(spec.name, kind, allow))
    return InputSchema(tuple(cols))


def _set_single_thread(model: Any) -> None:
    # Per-request joblib dispatch costs more than a forest's prediction on a few rows.
    steps = getattr(model, "steps", None)
    for est in [s for _, s in steps] if steps else [model]:
        if "n_jobs" in getattr(est, "get_params", dict)():
            est.set_params(n_jobs=1)


class Predictor:
    """A loaded model: ``predict(columns) -> array`` plus what the server reports about it."""

    def __init__(
        self,
        ref: ModelRef,
        schema: InputSchema,
        sk_model: Any,
        onnx_session: Any = None,
        pyfunc: Any = None,
        task: str | None = None,
    ) -> None:
        self.ref = ref
        self.name = ref.name
        self.version = ref.version
        self.schema = schema
        self.sk_model = sk_model
        self.session = onnx_session
        self.pyfunc = pyfunc
        self.task = task
        self.classes = (
            np.asarray(getattr(sk_model, "classes_", [])) if sk_model is not None else None
        )
        self.backend = (
            "onnx"
            if onnx_session is not None
            else ("sklearn" if sk_model is not None else "pyfunc")
        )
        self._onnx_inputs: list[tuple[str, str]] = []
        if onnx_session is not None:
            self._onnx_inputs = [(i.name, i.type) for i in onnx_session.get_inputs()]
            self._proba_index = 1 if len(onnx_session.get_outputs()) > 1 else 0

    @property
    def is_classifier(self) -> bool:
        """True when predictions are class labels."""
        return self.task == "classification" or (self.classes is not None and len(self.classes) > 0)

    def feeds(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """ONNX inputs exactly as ``onnx_feeds`` builds them, without pandas."""
        out = {}
        for name, typ in self._onnx_inputs:
            col = columns[name]
            if typ == "tensor(string)":
                if col.dtype == object:
                    from pandas import isna  # None and NaN alike, as onnx_feeds treats them

                    col = np.where(isna(col), "", col)
                out[name] = col.astype(str).reshape(-1, 1)
            elif typ == "tensor(double)":
                out[name] = col.astype(np.float64, copy=False).reshape(-1, 1)
            else:
                out[name] = col.astype(np.float32).reshape(-1, 1)
        return out

    def frame(self, columns: dict[str, np.ndarray]) -> Any:
        """The DataFrame MLflow's pyfunc would pass to sklearn for these columns."""
        import pandas as pd

        return pd.DataFrame({name: columns[name] for name in self.schema.names}, copy=False)

    def predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """One prediction per row (labels for classifiers, floats for regressors)."""
        if self.session is not None:
            outs = self.session.run(None, self.feeds(columns))
            if self.is_classifier:
                from mlcycle.train.onnx_export import labels_from_proba

                assert self.classes is not None  # classifiers always carry their classes
                return labels_from_proba(np.asarray(outs[self._proba_index]), self.classes)
            return np.asarray(outs[0], dtype=np.float64).ravel()
        if self.sk_model is not None:
            return np.asarray(self.sk_model.predict(self.frame(columns)))
        return np.asarray(self.pyfunc.predict(self.frame(columns)))

    def predict_proba(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """Class probabilities, one row per record, columns in :attr:`proba_classes` order.

        The ONNX fast path returns the probabilities its labels come from; sklearn calls
        ``predict_proba``; any other pyfunc is asked as :func:`mlcycle.proba.class_probabilities`
        asks (``params={"predict_method": "predict_proba"}`` for a PythonModel, which must
        answer with one column per class).

        Raises:
            ServingError: a pyfunc that gives no class probabilities.
        """
        if self.session is not None:
            outs = self.session.run(None, self.feeds(columns))
            return np.asarray(outs[self._proba_index], dtype=np.float64)
        if self.sk_model is not None:
            return np.asarray(self.sk_model.predict_proba(self.frame(columns)), dtype=np.float64)
        found = class_probabilities(self.pyfunc, self.frame(columns))
        if found is None:
            raise ServingError(f"{self.ref.uri} gives no class probabilities (predict_proba)")
        values, self.classes = found
        return values

    @property
    def proba_classes(self) -> list[Any]:
        """Class names of the columns :meth:`predict_proba` returns."""
        return [] if self.classes is None else self.classes.tolist()

    def labels(self, proba: np.ndarray) -> np.ndarray:
        """The label of each row of :meth:`predict_proba` output (first class wins a tie)."""
        from mlcycle.train.onnx_export import labels_from_proba

        assert self.classes is not None
        return labels_from_proba(proba, self.classes)


def check_model(ref: ModelRef, allow_pickle: bool = False) -> InputSchema:
    """Read only the MLmodel file: apply the trust policy, require a named signature.

    Raises:
        UntrustedModel: the model could run code when loaded (see :mod:`mlcycle.trust`).
        ServingError: no usable signature.
        ModelNotFound: no MLmodel file.
    """
    mlmodel, _ = trust.read_mlmodel(ref.download_uri)
    trust.check_mlmodel(mlmodel, _where(ref), allow_pickle)
    return schema_from_mlmodel(mlmodel)


def _where(ref: ModelRef) -> str:
    return ref.uri if ref.version in ("local", "") else f"{ref.uri} (version {ref.version})"


def load_predictor(
    ref: ModelRef,
    *,
    allow_pickle: bool = False,
    use_onnx: bool = True,
    dst: str | None = None,
) -> Predictor:
    """Download and load the model ``ref`` points at.

    Args:
        ref: from :func:`resolve`.
        allow_pickle: skip the trust policy (pickle, cloudpickle, ``code/`` run code on load).
        use_onnx: use the verified ONNX copy of a classifier when there is one.
        dst: download directory (a temporary one when ``None``).

    Raises:
        UntrustedModel: the trust policy refused the model (see :mod:`mlcycle.trust`).
        ServingError: the model cannot be loaded.
        ModelNotFound: the artifacts are missing.
    """
    t0 = time.perf_counter()
    local, mlmodel = trust.fetch_model(
        ref.download_uri, _where(ref), allow_pickle=allow_pickle, dst=dst
    )
    schema = schema_from_mlmodel(mlmodel)
    flavors = mlmodel.flavors
    meta = (mlmodel.metadata or {}).get("mlcycle") or {}
    task = meta.get("task")
    sk_model = pyfunc = session = None
    try:
        if flavors.get("sklearn") is not None:
            # mlcycle's own reviewed allow-list, not the one stored in the model: works with
            # MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false (the image's setting).
            sk_model = trust.load_sklearn(local, mlmodel)
            _set_single_thread(sk_model)
        else:
            pyfunc = trust.load_pyfunc(str(local), _where(ref), allow_pickle=allow_pickle)
    except UntrustedModel:
        raise
    except Exception as exc:
        raise ServingError(f"cannot load {ref.uri}: {type(exc).__name__}: {exc}") from exc
    onnx_file = meta.get("onnx")
    onnx_path = local / "extra_files" / str(onnx_file) if onnx_file else None
    if (
        use_onnx
        and sk_model is not None
        and task == "classification"
        and onnx_path is not None
        and onnx_path.exists()
        and available("onnxruntime")  # without the onnx extra, sklearn serves the model
    ):
        # Labels are exact (verified at training); regression stays on sklearn so floats
        # match `mlflow models serve` bit for bit.
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    pred = Predictor(ref, schema, sk_model, session, pyfunc, task)
    logger.info(
        "loaded %s version %s (%s) in %.2fs",
        ref.name,
        ref.version,
        pred.backend,
        time.perf_counter() - t0,
    )
    return pred
