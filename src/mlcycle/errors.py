"""Domain errors. The library raises these; only ``mlcycle.cli`` turns them into exit codes.

API: :class:`MlcycleError` and its subclasses, :func:`access_error` (a tracking server's
401/403 as a domain error).
"""


class MlcycleError(Exception):
    """Base class of every error mlcycle reports to a user."""


class ConfigError(MlcycleError):
    """A setting or an argument has a value mlcycle cannot use."""


class DataError(MlcycleError):
    """Input data is missing, unreadable or unfit for the requested task."""


class TrainingError(MlcycleError):
    """A training run could not be completed."""


class ModelNotFound(MlcycleError):
    """No registered model, version, alias or run model matches."""


class GateRejected(MlcycleError):
    """The champion/challenger gate refused a promotion."""


class SchemaMismatch(MlcycleError):
    """A model's input schema is incompatible with what it is compared to or fed."""


class RegistryConflict(MlcycleError):
    """The registry is not in a state that allows the requested operation."""


class MonitoringError(MlcycleError):
    """A monitoring window could not be analysed."""


class ServingError(MlcycleError):
    """The model server could not load or serve a model."""


class UntrustedModel(ServingError):
    """A model's files could run code when loaded and nobody opted in (mlcycle.trust)."""


class AccessDenied(MlcycleError):
    """The tracking server refused the credentials (401) or the permission (403)."""


def access_error(exc: BaseException) -> AccessDenied | None:
    """A tracking server's 401/403 as one line for the user; ``None`` for any other error.

    MLflow raises these as ``MlflowException``/``RestException`` whose text carries the whole
    response body; the line keeps MLflow's message and drops the body.
    """
    status = getattr(exc, "get_http_status_code", lambda: None)()
    if status == 401:
        return AccessDenied(
            "not authenticated by the tracking server: check MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD"
        )
    if status == 403:
        detail = str(exc).split(". Response body:", 1)[0]
        return AccessDenied(
            f"permission denied by the tracking server ({detail}); an admin can grant "
            "EDIT or MANAGE on the experiment or registered model"
        )
    return None
