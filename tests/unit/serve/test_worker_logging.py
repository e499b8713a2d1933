"""Logging in a `mlcycle serve --workers N` worker: a fresh interpreter, set up by the server."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import logging
from mlcycle.serve.server import ServerConfig, _worker_logging
config = ServerConfig.from_json(ServerConfig("models:/m/1", log_level=20).to_json())
_worker_logging(config.log_level)
uri = "http://admin:s3cret@tracking:5000"
logging.getLogger("mlcycle.serve.holder").info("reload from %s failed", uri)
logging.getLogger("mlcycle.serve.app").debug("a debug line")
"""


def test_a_worker_logs_info_lines_with_passwords_masked() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=120
    )
    assert "INFO mlcycle.serve.holder: reload from http://admin:" in out.stderr, out.stderr
    assert "s3cret" not in out.stderr
    assert "a debug line" not in out.stderr  # the level handed over is kept
