"""Every ``mlcycle.*`` tag key mlcycle writes or reads, named once (like MLflow's
``mlflow/utils/mlflow_tags.py``).

Run tags, model-version tags and registry-audit tags are all here; modules import the
constant (``from mlcycle.tags import MLCYCLE_TASK``), never spell the key. Keys that end
in ``.`` are prefixes completed by a name.
"""

from __future__ import annotations

# ----------------------------------------------------------- lifecycle contract (runs/versions)
MLCYCLE_TARGET = "mlcycle.target"
MLCYCLE_TASK = "mlcycle.task"
MLCYCLE_POS_LABEL = "mlcycle.pos_label"

# ---------------------------------------------------------------------------- training runs
MLCYCLE_KIND = "mlcycle.kind"  # train | search | trial | monitor-window | monitor-trend
MLCYCLE_DATA_DIGEST = "mlcycle.data_digest"
MLCYCLE_VERSION = "mlcycle.version"  # the mlcycle package version that trained
MLCYCLE_ESTIMATOR = "mlcycle.estimator"
MLCYCLE_ONNX = "mlcycle.onnx"
MLCYCLE_MODEL_URI = "mlcycle.model_uri"
MLCYCLE_BEST_TRIAL_RUN_ID = "mlcycle.best_trial_run_id"
MLCYCLE_BEST_TRIAL_NUMBER = "mlcycle.best_trial_number"
MLCYCLE_TRIAL = "mlcycle.trial"
MLCYCLE_WORKER = "mlcycle.worker"
MLCYCLE_STUDY = "mlcycle.study"
MLCYCLE_SEARCH_ENGINE = "mlcycle.search_engine"

# --------------------------------------------------------------------------- model versions
#: Prefix of the headline test metric kept as a version tag (``mlcycle.metric.test_rmse``).
MLCYCLE_METRIC_PREFIX = "mlcycle.metric."
MLCYCLE_PREVIOUS_CHAMPION = "mlcycle.previous_champion"
MLCYCLE_ROLLED_BACK = "mlcycle.rolled_back"

# -------------------------------------------------------------------------------------- gate
MLCYCLE_GATE_ROLE = "mlcycle.gate.role"
MLCYCLE_GATE_VERSION = "mlcycle.gate.version"
MLCYCLE_GATE_PASSED = "mlcycle.gate.passed"
MLCYCLE_GATE_SCORE = "mlcycle.gate.score"
MLCYCLE_GATE_AUDIT_RUN_ID = "mlcycle.gate.audit_run_id"
MLCYCLE_GATE_MODE = "mlcycle.gate.mode"
MLCYCLE_GATE_METRIC = "mlcycle.gate.metric"
MLCYCLE_GATE_REASONS = "mlcycle.gate.reasons"

# --------------------------------------------------------------------------- registry audit
#: Prefix of the audit run tags (``mlcycle.audit.model``, ``…action``, ``…who``, …).
MLCYCLE_AUDIT_PREFIX = "mlcycle.audit."

# ------------------------------------------------------------------------- monitoring runs
MLCYCLE_MODEL = "mlcycle.model"
MLCYCLE_MODEL_VERSION = "mlcycle.model_version"
MLCYCLE_WINDOW = "mlcycle.window"
MLCYCLE_SOURCE = "mlcycle.source"
MLCYCLE_MONTH = "mlcycle.month"
MLCYCLE_STATUS = "mlcycle.status"
MLCYCLE_DRIFTED = "mlcycle.drifted"
MLCYCLE_FINDINGS = "mlcycle.findings"
MLCYCLE_WINDOW_INDEX = "mlcycle.window_index"
MLCYCLE_DRIFT_THRESHOLD = "mlcycle.drift_threshold"
MLCYCLE_DECISION = "mlcycle.decision"
MLCYCLE_DECISION_REASONS = "mlcycle.decision.reasons"
MLCYCLE_DUPLICATE_OF = "mlcycle.duplicate_of"
MLCYCLE_RETRAIN_SKIPPED = "mlcycle.retrain.skipped"
MLCYCLE_RETRAIN_RUN_ID = "mlcycle.retrain.run_id"
MLCYCLE_RETRAIN_VERSION = "mlcycle.retrain.version"
MLCYCLE_RETRAIN_PROMOTED = "mlcycle.retrain.promoted"

# ------------------------------------------------------------------------------- retraining
MLCYCLE_RETRAIN_OF_VERSION = "mlcycle.retrain_of_version"
MLCYCLE_RETRAIN_ROWS_PRODUCTION = "mlcycle.retrain_rows_production"
MLCYCLE_MONITORING_RUN_ID = "mlcycle.monitoring_run_id"
#: Run and version tag: the user's MLflow project a retrain ran, and the run it produced.
MLCYCLE_RETRAIN_PROJECT = "mlcycle.retrain_project"
MLCYCLE_PROJECT_RUN_ID = "mlcycle.project_run_id"

# Canary checks (monitoring/canary_run.py) and the canary's share (register/canary.py).
MLCYCLE_CANARY_CHAMPION = "mlcycle.canary.champion"
MLCYCLE_CANARY_CHALLENGER = "mlcycle.canary.challenger"
MLCYCLE_CANARY_METRIC = "mlcycle.canary.metric"
MLCYCLE_CANARY_DECISION = "mlcycle.canary.decision"
MLCYCLE_CANARY_REASONS = "mlcycle.canary.reasons"
#: Audit tag: the canary check run a decision came from.
MLCYCLE_CANARY_RUN_ID = "mlcycle.canary.run_id"
#: Version tag: the traffic share a canary's challenger is at (raised step by step).
MLCYCLE_CANARY_SHARE = "mlcycle.canary.share"
#: Run tag of a check a concurrent check beat to the decision (the run is then deleted).
MLCYCLE_CANARY_SUPERSEDED = "mlcycle.canary.superseded"
