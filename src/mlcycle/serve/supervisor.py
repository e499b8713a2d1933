"""The parent process of ``mlcycle serve --workers N``: binds the port, runs the workers.

API: :func:`exec_supervisor`, :func:`main` (``python -m mlcycle.serve.supervisor``).

The parent answers no request, yet by the time :func:`~mlcycle.serve.server.serve` has checked
the model it holds MLflow, pandas and scikit-learn (267 MB measured). So ``serve`` replaces
itself with this module (``exec``: same pid, so signals and exit status reach it as before),
which imports uvicorn and the metrics directory helper only. Each worker is a fresh
interpreter (uvicorn spawns them) that builds its own app from ``MLCYCLE_SERVE_CONFIG``.
"""

from __future__ import annotations

import json
import signal
import sys
from typing import Any, NoReturn

#: The uvicorn factory each worker runs.
WORKER_APP = "mlcycle.serve.server:app_from_env"


def exec_supervisor(workers: int, uvicorn_options: dict[str, Any]) -> NoReturn:
    """Replace this process with the supervisor of ``workers`` workers.

    The caller has put the workers' config in the environment; ``uvicorn_options`` must be
    JSON (the ``http`` protocol as an import string).
    """
    import os

    doc = json.dumps({"workers": workers, "uvicorn": uvicorn_options})
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", __name__, doc])


def main(argv: list[str] | None = None) -> None:
    """Run uvicorn's process manager with the options :func:`exec_supervisor` passed."""
    import uvicorn

    from mlcycle.serve.metrics import multiprocess_dir

    doc = json.loads((argv if argv is not None else sys.argv[1:])[0])
    # uvicorn re-raises SIGTERM once it has drained; by then the workers have flushed, so
    # end with status 0 instead of dying by the signal.
    signal.signal(signal.SIGTERM, lambda *_: None)
    with multiprocess_dir():
        uvicorn.run(WORKER_APP, factory=True, workers=doc["workers"], **doc["uvicorn"])


if __name__ == "__main__":
    main()
