"""Helpers shared by tests: services, ports and process groups.

Imported as ``from testkit import ...`` (``tests/`` is on pytest's pythonpath); a module
of its own because several ``conftest.py`` files share that name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_URL = os.environ.get(
    "MLCYCLE_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)


def need(condition: bool, why: str) -> None:
    """Skip locally, fail under CI=true: CI must not quietly skip what it is meant to test."""
    if not condition:
        if CI:
            pytest.fail(f"required service missing under CI=true: {why}")
        pytest.skip(why)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def wait_for_answer(
    proc: subprocess.Popen,
    port: int,
    answered: Callable[[], bool],
    timeout: float,
    pause: float = 0.1,
) -> float:
    """Block until ``answered()`` is true (an ``httpx.HTTPError`` counts as not yet); return
    the seconds waited.

    Raises:
        RuntimeError: the process exited first.
        TimeoutError: no answer within ``timeout`` seconds.
    """
    import httpx

    t0 = time.monotonic()
    wait_for_port(port, timeout, proc)
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if answered():
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(pause)
    raise TimeoutError(f"no answer after {timeout}s")


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Stop a process started with ``start_new_session=True`` and all its children."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass


def _pg_reachable() -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", 5432)) == 0


def chromium() -> str | None:
    """Debian's headless browser, when installed."""
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


def dump_dom(exe: str, html: Path, profile: Path) -> str:
    """The DOM of a local page after its scripts ran, in headless Chromium (no network)."""
    proc = subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout
