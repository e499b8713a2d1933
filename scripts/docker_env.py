"""Prepare a Docker engine and the local base image the container tests build on.

Run ``python scripts/docker_env.py`` to prepare both by hand (``--stop`` stops a daemon this
script started); the container tests call :func:`prepare` from a pytest fixture.

- Engine: a reachable daemon is reused; otherwise ``dockerd`` is started in its own process
  group and only that one is stopped afterwards (its pid is kept in ``STATE_DIR``).
- Base image: the Dockerfiles start ``FROM python:3.11-slim``. Where no registry can be
  reached that tag cannot be pulled, so a stand-in is built once from Debian bookworm
  (``debootstrap`` from the mirror apt already uses, whose ``python3`` is 3.11) and cached by
  tag: a second run finds the tag and builds nothing. A tag that already exists (pulled or
  built) is always reused.

The stand-in carries the host's CA bundle and ``PIP_CERT`` naming it, so ``pip`` inside a build
reaches the package index the host reaches, also behind an inspecting proxy.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("docker_env")

BASE_TAG = "python:3.11-slim"
SUITE = "bookworm"
STATE_DIR = Path(os.environ.get("MLCYCLE_DOCKER_STATE", "/tmp/mlcycle-docker"))
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# python3 is Debian's 3.11; passwd gives useradd; the rest keeps the image close to the real tag.
_PACKAGES = "python3,python3-pip,python3-venv,passwd,ca-certificates"


class DockerUnavailable(RuntimeError):
    """No engine can run here; the message says why."""


@dataclass
class Engine:
    """A usable Docker engine; ``started`` when this process started its daemon."""

    docker: str
    started: subprocess.Popen | None = None

    def stop(self) -> None:
        """Stop the daemon only if this process started it."""
        proc = self.started
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        (STATE_DIR / "dockerd.pid").unlink(missing_ok=True)


def _reachable(docker: str) -> bool:
    probe = subprocess.run(
        [docker, "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return probe.returncode == 0


def ensure_engine(timeout: float = 90.0, attempts: int = 2) -> Engine:
    """Reuse a reachable Docker daemon or start ``dockerd``.

    Starting is serialised by a lock file, so two test sessions (or xdist workers) never race
    two daemons onto one socket. A daemon that exits at start is retried once; if another
    daemon answers meanwhile (a service manager's, another session's) that one is reused.

    Raises:
        DockerUnavailable: no ``docker`` CLI, no ``dockerd`` to start, or it did not come up;
            the message carries dockerd's exit status and its error lines.
    """
    docker = shutil.which("docker")
    if docker is None:
        raise DockerUnavailable("no 'docker' CLI on PATH (apt-get install docker.io)")
    if _reachable(docker):
        return Engine(docker)
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise DockerUnavailable("the Docker daemon is not running and there is no 'dockerd'")
    if os.geteuid() != 0:
        raise DockerUnavailable("the Docker daemon is not running and starting it needs root")
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    with FileLock(str(STATE_DIR / "engine.lock")):
        if _reachable(docker):
            return Engine(docker)
        why = ""
        for _ in range(attempts):
            engine, why = _start_dockerd(docker, dockerd, timeout)
            if engine is not None:
                return engine
            if _wait_reachable(docker, 10.0):  # another daemon won the socket: reuse it
                return Engine(docker)
        raise DockerUnavailable(why)


def _wait_reachable(docker: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _reachable(docker):
            return True
        time.sleep(1.0)
    return False


_ERROR_LINE = re.compile(r"level=(error|fatal)|failed to start|^Error|panic:", re.I)


def _start_dockerd(docker: str, dockerd: str, timeout: float) -> tuple[Engine | None, str]:
    """Start one ``dockerd`` and wait for it; ``(None, why)`` when it exited or never answered."""
    logfile = STATE_DIR / "dockerd.log"
    with logfile.open("ab") as log:
        offset = log.tell()
        proc = subprocess.Popen(
            [dockerd], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    (STATE_DIR / "dockerd.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None, f"dockerd {_exit_status(proc.returncode)} at start: " + _log_excerpt(
                logfile, offset
            )
        if _reachable(docker):
            logger.info("started dockerd (pid %d)", proc.pid)
            return Engine(docker, proc), ""
        time.sleep(0.5)
    Engine(docker, proc).stop()
    return None, f"dockerd did not answer within {timeout:.0f}s: " + _log_excerpt(logfile, offset)


def _exit_status(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _log_excerpt(logfile: Path, offset: int) -> str:
    """This start's error lines from the daemon log (its last lines when none says error)."""
    with logfile.open("rb") as fh:
        fh.seek(offset)
        lines = fh.read().decode(errors="replace").splitlines()
    errors = [line for line in lines if _ERROR_LINE.search(line)]
    return " | ".join((errors or lines)[-5:]) or "(no output)"


def image_exists(docker: str, tag: str) -> bool:
    done = subprocess.run(
        [docker, "image", "inspect", tag], capture_output=True, check=False, timeout=30
    )
    return done.returncode == 0


def apt_mirror(suite: str = SUITE) -> str:
    """The Debian mirror apt already uses for ``suite`` (deb822 ``.sources`` or one-line form).

    ``MLCYCLE_DEBIAN_MIRROR`` overrides it.

    Raises:
        DockerUnavailable: apt names no mirror for the suite.
    """
    if os.environ.get("MLCYCLE_DEBIAN_MIRROR"):
        return os.environ["MLCYCLE_DEBIAN_MIRROR"]
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        for stanza in re.split(r"\n\s*\n", text):
            fields = dict(
                (m.group(1).lower(), m.group(2).split())
                for m in re.finditer(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M)
            )
            if suite in fields.get("suites", []) and "main" in fields.get("components", []):
                return fields["uris"][0]
        for line in text.splitlines():
            parts = line.split("#", 1)[0].split()
            if len(parts) >= 4 and parts[0] == "deb":
                rest = [p for p in parts[1:] if not p.startswith("[")]
                if len(rest) >= 3 and rest[1] == suite and "main" in rest[2:]:
                    return rest[0]
    raise DockerUnavailable(f"apt names no Debian mirror for {suite}; set MLCYCLE_DEBIAN_MIRROR")


def _prepare_rootfs(root: Path) -> None:
    """Make Debian's Python look like the official image: ``python``/``pip`` on PATH, pip
    allowed to install system-wide (it is the image's only Python), the host's CA bundle."""
    (root / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
    for name, target in (("python", "/usr/bin/python3"), ("pip", "/usr/bin/pip3")):
        link = root / "usr/local/bin" / name
        if not link.exists():
            link.symlink_to(target)
    certs = root / "etc/ssl/certs"
    certs.mkdir(parents=True, exist_ok=True)
    if HOST_CA_BUNDLE.is_file():
        shutil.copyfile(HOST_CA_BUNDLE, certs / "ca-certificates.crt")
    # Nothing in the image needs apt's lists, docs or man pages: they only add size.
    for junk in ("var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man"):
        shutil.rmtree(root / junk, ignore_errors=True)
        (root / junk).mkdir(parents=True, exist_ok=True)


def ensure_base_image(engine: Engine, tag: str = BASE_TAG) -> bool:
    """Build the stand-in base image under ``tag`` unless the tag already exists.

    Returns:
        True when it was built now, False when the cached tag was reused.

    Raises:
        DockerUnavailable: no ``debootstrap`` or it failed.
    """
    if image_exists(engine.docker, tag):
        return False
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise DockerUnavailable(f"no image {tag} and no 'debootstrap' to build one")
    mirror = apt_mirror()
    with tempfile.TemporaryDirectory(prefix="mlcycle-rootfs-") as tmp:
        root = Path(tmp) / "root"
        started = time.monotonic()
        done = subprocess.run(
            [debootstrap, "--variant=minbase", f"--include={_PACKAGES}", SUITE, str(root), mirror],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise DockerUnavailable("debootstrap failed: " + " | ".join(tail))
        _prepare_rootfs(root)
        changes = [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
            'CMD ["python3"]',
        ]
        argv = [engine.docker, "import"]
        for change in changes:
            argv += ["--change", change]
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [*argv, "-", tag], stdin=tar.stdout, capture_output=True, text=True, check=False
        )
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise DockerUnavailable(f"docker import failed: {imported.stderr.strip()}")
        logger.info("built %s in %.0fs", tag, time.monotonic() - started)
    return True


def prepare(tag: str = BASE_TAG) -> Engine:
    """A usable engine with ``tag`` present; the caller stops the engine when done."""
    engine = ensure_engine()
    try:
        ensure_base_image(engine, tag)
    except BaseException:
        engine.stop()
        raise
    return engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", default=BASE_TAG, help="tag of the base image")
    parser.add_argument(
        "--stop", action="store_true", help="stop the dockerd this script started earlier"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.stop:
        pidfile = STATE_DIR / "dockerd.pid"
        if pidfile.exists():
            os.killpg(int(pidfile.read_text()), signal.SIGTERM)
            pidfile.unlink()
        return 0
    try:
        engine = prepare(args.tag)
    except DockerUnavailable as exc:
        logger.error("%s", exc)
        return 1
    # Left running on purpose: `--stop` ends a daemon this script started.
    logger.info("engine ready (%s); base image %s present", engine.docker, args.tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
