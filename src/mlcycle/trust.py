"""The model-trust policy and the one safe loader: which model files may run here.

API: :func:`read_mlmodel`, :func:`check_mlmodel`, :func:`check_files`, :func:`fetch_model`,
:func:`load_sklearn`, :func:`load_pyfunc`, :func:`mlmodel_digest`.

Loading a model must never run code its author chose, because the author may be anyone with
EDIT on one registered model, and the loader runs as the serving, gating or scoring user.
By default only formats that cannot run code load:

- scikit-learn saved with skops, holding only mlcycle's reviewed types
  (:data:`mlcycle.train.pipelines.REVIEWED_TRUSTED_TYPES`, not the list stored in the model);
- ONNX (``mlflow.onnx``);
- the native formats of XGBoost (``json``/``ubj``/``xgb``) and of LightGBM boosters.

Anything else is refused with :class:`~mlcycle.errors.UntrustedModel` before it is imported:
a ``python_function`` flavor whose ``loader_module`` is not in :data:`SAFE_LOADERS`, a
``code`` entry or ``code/`` directory, a cloudpickled ``python_model``, and pickle, joblib or
cloudpickle data in any flavor or file. The decision is made from the MLmodel file first (for
a remote model only that file is downloaded), then from the downloaded directory, before
anything is loaded. ``allow_pickle`` (``--allow-pickle`` or ``MLCYCLE_ALLOW_PICKLE=true``)
opts out. MLflow's ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` is not relied upon: a custom
loader shipped in ``code/`` runs whatever it says.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mlcycle.errors import ModelNotFound, ServingError, UntrustedModel
from mlcycle.uris import logged_model_id

logger = logging.getLogger(__name__)

#: ``python_function`` loader modules whose data formats cannot run code (checked per flavor).
SAFE_LOADERS = frozenset({"mlflow.sklearn", "mlflow.onnx", "mlflow.xgboost", "mlflow.lightgbm"})
#: File name endings that mean pickle-family data, wherever they sit in the model directory.
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".cloudpickle", ".pt", ".pth")
_XGBOOST_FORMATS = frozenset({"json", "ubj", "xgb"})
#: XGBoost classes MLflow may name: its loader imports and calls whatever ``model_class`` says.
XGBOOST_CLASSES = frozenset(
    f"xgboost.{name}"
    for name in (
        "core.Booster",
        "sklearn.XGBClassifier",
        "sklearn.XGBRegressor",
        "sklearn.XGBRanker",
        "sklearn.XGBRFClassifier",
        "sklearn.XGBRFRegressor",
    )
)
_LGB_BOOSTER = "lightgbm.basic.Booster"
_SWITCH = "pass --allow-pickle (or set MLCYCLE_ALLOW_PICKLE=true) only if you trust its author"


def _refuse(where: str, why: str) -> UntrustedModel:
    return UntrustedModel(f"{where} refused: {why}; it could run code when loaded; {_SWITCH}")


def read_mlmodel(download_uri: str) -> tuple[Any, str]:
    """The MLmodel of a model directory or URI, downloading only that file when remote.

    Returns:
        The parsed ``mlflow.models.Model`` and the sha256 of the MLmodel file.

    Raises:
        ModelNotFound: no readable MLmodel file.
    """
    from mlflow.models import Model

    local = Path(download_uri.removeprefix("file://"))
    tmp = None
    if local.is_dir():
        path = local / "MLmodel"
    else:
        tmp = tempfile.mkdtemp(prefix="mlcycle-mlmodel-")
        try:
            path = Path(_download_mlmodel(download_uri, tmp))
        except Exception as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ModelNotFound(f"cannot read the MLmodel file of {download_uri}: {exc}") from exc
    try:
        text = path.read_bytes()
        model = Model.load(str(path))
    except Exception as exc:
        raise ModelNotFound(f"cannot read the MLmodel file of {download_uri}: {exc}") from exc
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return model, hashlib.sha256(text).hexdigest()


def _download_mlmodel(download_uri: str, dst: str) -> str:
    import mlflow

    try:
        return str(
            mlflow.artifacts.download_artifacts(
                artifact_uri=download_uri.rstrip("/") + "/MLmodel", dst_path=dst
            )
        )
    except Exception:
        if logged_model_id(download_uri) is None:
            raise
    # A logged-model id (MLflow 3) takes no sub-path: its artifact location does.
    model_id = str(logged_model_id(download_uri))
    location = mlflow.MlflowClient().get_logged_model(model_id).artifact_location
    return str(
        mlflow.artifacts.download_artifacts(
            artifact_uri=location.rstrip("/") + "/MLmodel", dst_path=dst
        )
    )


def mlmodel_digest(local: Path) -> str:
    """sha256 of a downloaded model's MLmodel file (names a refused copy in logs)."""
    return hashlib.sha256((local / "MLmodel").read_bytes()).hexdigest()


def check_mlmodel(mlmodel: Any, where: str, allow_pickle: bool = False) -> None:
    """Apply the policy to the MLmodel file alone (nothing downloaded or imported yet).

    Raises:
        UntrustedModel: the model names a loader, code or a format that can run code.
    """
    if allow_pickle:
        return
    flavors: dict[str, Any] = dict(mlmodel.flavors or {})
    pyfunc = flavors.get("python_function")
    sk = flavors.get("sklearn")
    if pyfunc is not None:
        loader = pyfunc.get("loader_module")
        if pyfunc.get("code"):
            raise _refuse(where, f"it ships code ({pyfunc['code']}) for its python_function")
        if pyfunc.get("python_model") or pyfunc.get("cloudpickle_version"):
            raise _refuse(where, "its python_function is a cloudpickled PythonModel")
        if loader not in SAFE_LOADERS:
            raise _refuse(where, f"its python_function loads with '{loader or 'mlflow.pyfunc'}'")
        if loader == "mlflow.sklearn":
            # Without a sklearn flavor, MLflow's sklearn loader assumes pickle.
            if sk is None:
                raise _refuse(
                    where, "its python_function names mlflow.sklearn with no sklearn flavor"
                )
            if pyfunc.get("model_path") != sk.get("pickled_model"):
                raise _refuse(where, "its python_function and sklearn flavors name different files")
        if sk is not None and loader != "mlflow.sklearn":
            # The server scores the sklearn flavor; gate and batch scoring would score this
            # loader's model: a good one could pass the gate for a bad one that is served.
            raise _refuse(
                where, f"it has an sklearn flavor but its python_function loads with '{loader}'"
            )
        if loader == "mlflow.onnx" and "onnx" not in flavors:
            raise _refuse(where, "its python_function names mlflow.onnx with no onnx flavor")
        if loader == "mlflow.xgboost":
            xgb = flavors.get("xgboost") or {}
            if xgb.get("model_format") not in _XGBOOST_FORMATS:
                raise _refuse(where, f"its xgboost format is '{xgb.get('model_format')}'")
            # MLflow's loader imports this dotted name and calls it (os.abort would do).
            if xgb.get("model_class", "xgboost.core.Booster") not in XGBOOST_CLASSES:
                raise _refuse(where, f"its xgboost model_class is '{xgb.get('model_class')}'")
        if loader == "mlflow.lightgbm":
            lgb = flavors.get("lightgbm") or {}
            if lgb.get("model_class", _LGB_BOOSTER) != _LGB_BOOSTER:
                raise _refuse(where, f"its lightgbm model ({lgb.get('model_class')}) is pickled")
    if pyfunc is not None and pyfunc.get("data") is not None:
        # The xgboost/lightgbm/onnx loaders read the flavor settings of the MLmodel found
        # beside pyfunc's ``data``: anywhere but this directory is an MLmodel never checked.
        own = flavors.get(str(pyfunc.get("loader_module", "")).removeprefix("mlflow.")) or {}
        if pyfunc["data"] != own.get("data"):
            raise _refuse(
                where, f"its python_function data ({pyfunc['data']}) is not its flavor's data"
            )
    if sk is not None and sk.get("serialization_format") != "skops":
        raise _refuse(where, f"its sklearn model is saved with {sk.get('serialization_format')}")
    if pyfunc is None and sk is None and "onnx" not in flavors:
        raise _refuse(where, f"no flavor mlcycle can load safely ({', '.join(flavors) or 'none'})")


def check_files(local: Path, mlmodel: Any, where: str, allow_pickle: bool = False) -> None:
    """Apply the policy to a downloaded model directory, before anything in it is loaded.

    Also checks every skops file named by the sklearn flavor against mlcycle's reviewed
    types, so that any skops loader (mlcycle's or MLflow's) meets only those.

    Raises:
        UntrustedModel: a ``code/`` directory, pickle-family files or unreviewed skops types.
    """
    check_mlmodel(mlmodel, where, allow_pickle)
    if allow_pickle:
        return
    if (local / "code").exists():
        raise _refuse(where, "it ships a code/ directory")
    root = local.resolve()
    for f in sorted(local.rglob("*")):
        if f.name.lower().endswith(PICKLE_SUFFIXES):
            raise _refuse(where, f"it holds pickle-family data ({f.relative_to(local)})")
        if f.name == "MLmodel" and f.parent != local:
            # MLflow's flavor loaders read the MLmodel beside the data they are pointed at.
            raise _refuse(where, f"it holds a second MLmodel file ({f.relative_to(local)})")
    for name, conf in (mlmodel.flavors or {}).items():
        for key in ("data", "model_path", "pickled_model"):
            value = conf.get(key) if isinstance(conf, dict) else None
            if value is not None and not (local / str(value)).resolve().is_relative_to(root):
                raise _refuse(where, f"its {name} {key} ({value}) is outside the model directory")
    onnx = ((mlmodel.metadata or {}).get("mlcycle") or {}).get("onnx")
    if onnx is not None and not (local / "extra_files" / str(onnx)).resolve().is_relative_to(root):
        # The server opens this ONNX copy of a classifier instead of the checked sklearn model.
        raise _refuse(where, f"its mlcycle onnx file ({onnx}) is outside the model directory")
    sk = (mlmodel.flavors or {}).get("sklearn")
    if sk is not None:
        _reviewed_skops_types(local / str(sk.get("pickled_model")), where)


#: A skops file is a zip archive; MLflow and mlcycle store its members uncompressed (1×).
#: Reading one may take this many times the file's size in memory, or at least
#: :data:`SKOPS_MIN_ALLOWANCE`, whichever is larger: a few MB of compressed zeros declaring
#: gigabytes (a decompression bomb) are refused before a byte of them is inflated.
SKOPS_MAX_EXPANSION = 50
SKOPS_MIN_ALLOWANCE = 256 * 2**20


def _bounded_skops_file(path: Path, where: str) -> None:
    """Refuse a skops archive whose members declare more bytes than its size allows.

    ``zipfile`` stops inflating a member at its declared size, so the declared sizes bound
    what any reader of the archive (skops, MLflow) can allocate from it.
    """
    import zipfile

    try:
        size = path.stat().st_size
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (OSError, zipfile.BadZipFile) as exc:
        raise _refuse(where, f"its skops file {path.name} is unreadable ({exc})") from exc
    allowed = max(SKOPS_MIN_ALLOWANCE, SKOPS_MAX_EXPANSION * size)
    if declared > allowed:
        raise UntrustedModel(
            f"{where} refused: its skops file {path.name} declares {declared:,} bytes once "
            f"inflated from {size:,} (at most {allowed:,}: {SKOPS_MAX_EXPANSION}x its size or "
            f"{SKOPS_MIN_ALLOWANCE // 2**20} MB); reading it would exhaust memory"
        )


def _reviewed_skops_types(path: Path, where: str) -> list[str]:
    import skops.io as sio

    from mlcycle.train.pipelines import REVIEWED_TRUSTED_TYPES

    _bounded_skops_file(path, where)
    try:
        needed = sorted(sio.get_untrusted_types(file=path))
    except Exception as exc:
        raise _refuse(where, f"its skops file {path.name} is unreadable ({exc})") from exc
    unreviewed = [t for t in needed if t not in REVIEWED_TRUSTED_TYPES]
    if unreviewed:
        raise _refuse(where, "its skops file needs unreviewed types " + ", ".join(unreviewed))
    return needed


def fetch_model(
    download_uri: str, where: str, *, allow_pickle: bool = False, dst: str | None = None
) -> tuple[Path, Any]:
    """Check the MLmodel, download the model (a local directory is used in place), check it.

    Args:
        download_uri: a local model directory or any MLflow artifact URI of one.
        where: how errors name the model (its URI and version).
        allow_pickle: the explicit opt-in; skips the policy.
        dst: download directory (a temporary one when ``None``); the caller removes it.

    Returns:
        The local directory and its parsed MLmodel.

    Raises:
        UntrustedModel: refused by the policy (nothing but the MLmodel file was downloaded
            when the MLmodel alone decides).
        ModelNotFound: missing or unreadable.
    """
    import mlflow

    mlmodel, _ = read_mlmodel(download_uri)
    check_mlmodel(mlmodel, where, allow_pickle)
    local = Path(download_uri.removeprefix("file://"))
    if not local.is_dir():
        try:
            local = Path(
                mlflow.artifacts.download_artifacts(artifact_uri=download_uri, dst_path=dst)
            )
        except Exception as exc:
            raise ModelNotFound(f"cannot download {where}: {exc}") from exc
        local = _model_root(local)
    # What is loaded is what was just downloaded: read its MLmodel again.
    mlmodel, _ = read_mlmodel(str(local))
    check_files(local, mlmodel, where, allow_pickle)
    return local, mlmodel


def _model_root(local: Path) -> Path:
    """The directory holding ``MLmodel`` in a fresh download.

    A version whose source is ``runs:/RUN/model`` of an MLflow 3 logged model is fetched from
    the logged model's location into ``dst/model/``, not into ``dst`` itself.
    """
    if (local / "MLmodel").exists():
        return local
    entries = list(local.iterdir()) if local.is_dir() else []
    if len(entries) == 1 and entries[0].is_dir() and (entries[0] / "MLmodel").is_file():
        return entries[0]
    return local


def load_sklearn(local: Path, mlmodel: Any) -> Any:
    """The sklearn model of a checked directory: skops with reviewed types, else MLflow's.

    Raises:
        ServingError: the model cannot be loaded.
    """
    sk = mlmodel.flavors["sklearn"]
    if sk.get("serialization_format") == "skops":
        import skops.io as sio

        path = local / str(sk["pickled_model"])
        return sio.load(path, trusted=_reviewed_skops_types(path, str(local)))
    import mlflow.sklearn  # reached only with allow_pickle (check_mlmodel refuses it)

    return mlflow.sklearn.load_model(str(local))


def load_pyfunc(
    download_uri: str, where: str, *, allow_pickle: bool = False, dst: str | None = None
) -> Any:
    """The one safe loader of a ``PyFuncModel`` (gate, evaluate, batch scoring).

    skops models are loaded with mlcycle's reviewed types and wrapped as MLflow would, so
    schema enforcement and predictions are MLflow's own; other allowed formats go through
    ``mlflow.pyfunc.load_model`` on the checked directory.

    Raises:
        UntrustedModel: refused by the policy.
        ModelNotFound: missing or unreadable.
        ServingError: an allowed model failed to load.
    """
    import mlflow.pyfunc

    local, mlmodel = fetch_model(download_uri, where, allow_pickle=allow_pickle, dst=dst)
    flavors = mlmodel.flavors or {}
    loader = (flavors.get("python_function") or {}).get("loader_module")
    try:
        sk = flavors.get("sklearn")
        if (
            sk is not None
            and sk.get("serialization_format") == "skops"
            and loader
            in (
                "mlflow.sklearn",
                None,
            )
        ):
            from mlcycle.mlflow_compat import sklearn_pyfunc

            return sklearn_pyfunc(mlmodel, load_sklearn(local, mlmodel))
        return mlflow.pyfunc.load_model(str(local))
    except UntrustedModel:
        raise
    except Exception as exc:
        raise ServingError(f"cannot load {where}: {type(exc).__name__}: {exc}") from exc
