"""Domain errors. The library raises these; only ``mlcycle.cli`` turns them into exit codes."""


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
