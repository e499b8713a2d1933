"""The registry's and the monitor's file locks (``filelock``) exclude other processes and
threads while held, and release on exit."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

from mlcycle.monitoring.loop import _file_lock as window_lock
from mlcycle.register import lock

TRY_LOCK = """
import sys
from filelock import FileLock, Timeout
try:
    FileLock(sys.argv[1]).acquire(timeout=0.2)
except Timeout:
    print("busy")
else:
    print("free")
"""


def _other_process(path: Path) -> str:
    res = subprocess.run(
        [sys.executable, "-c", TRY_LOCK, str(path)], capture_output=True, text=True, timeout=60
    )
    return res.stdout.strip()


def _other_thread(path: Path) -> str:
    out: list[str] = []

    def attempt() -> None:
        try:
            FileLock(path).acquire(timeout=0.2)
        except Timeout:
            out.append("busy")
        else:
            out.append("free")

    t = threading.Thread(target=attempt)
    t.start()
    t.join(30)
    return out[0]


def test_the_registry_file_lock_excludes_other_processes_and_threads(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "registry.lock"
    with lock._file_lock(path):
        assert _other_process(path) == "busy"
        assert _other_thread(path) == "busy"
    assert _other_process(path) == "free"


def test_the_monitor_lock_for_a_window_excludes_another_monitor(tmp_path: Path) -> None:
    with window_lock(tmp_path / "locks", "model|window"):
        (held,) = (tmp_path / "locks").glob("*.lock")
        assert _other_process(held) == "busy"
    assert _other_process(held) == "free"


def test_the_lock_is_released_when_the_body_raises(tmp_path: Path) -> None:
    path = tmp_path / "registry.lock"
    with pytest.raises(RuntimeError), lock._file_lock(path):
        raise RuntimeError("promotion failed")
    assert _other_process(path) == "free"
