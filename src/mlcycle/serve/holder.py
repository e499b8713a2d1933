"""The models one server answers with: loaded with backoff, followed as the registry moves.

API: :class:`ModelSource`, :class:`Arms`, :class:`ModelHolder`, :class:`WorkerMarks`,
:data:`GONE`.

A :class:`ModelHolder` owns the predictors of one worker: the champion (loaded in the
background, retried with backoff while the registry is away or nothing is promoted yet) and,
for ``--shadow`` or ``--canary``, the ``@challenger`` of the same registered model. Every
``reload_interval`` it polls its :class:`ModelSource` and swaps in what moved, and for
``--canary`` the traffic share recorded on the challenger (``mlcycle canary`` raising it step by
step). Both predictors and the share live in one immutable :class:`Arms` value replaced by a
single assignment, so a request sees either the old pair or the new one, never half of each:
promotion and rollback happen between requests.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlcycle.retry import retry
from mlcycle.serve.heap import freeze_after_load
from mlcycle.serve.options import ServeOptions

logger = logging.getLogger(__name__)

#: Longest wait between two attempts of the first model load.
MAX_BACKOFF = 30.0
#: A worker with a loaded model keeps a file of this prefix and its pid in the shared dir.
READY_PREFIX = "mlcycle-ready-"


class _Gone:
    """What a challenger poll returns when ``@challenger`` names no version any more."""

    def __repr__(self) -> str:
        return "GONE"


#: The alias was removed (promoted, rolled back): the role has no model now.
GONE: Any = _Gone()


class ModelSource:
    """Where predictors come from.

    ``load()`` gives the first champion; ``poll(current)`` a newer champion or ``None``;
    ``poll_challenger(current)`` the ``@challenger`` when it is new (``current`` may be
    ``None``), ``None`` when unchanged and :data:`GONE` when the alias was removed;
    ``poll_share(challenger)`` the traffic share recorded on that version (``None``: none). The
    server's startup builds one from a model URI and an ``MlflowClient``; tests pass their own.
    ``refused`` counts the versions the trust policy refused; ``close()`` removes downloaded
    copies at shutdown.
    """

    def __init__(
        self,
        load: Callable[[], Any],
        poll: Callable[[Any], Any | None] | None = None,
        poll_challenger: Callable[[Any | None], Any | None] | None = None,
        close: Callable[[], None] | None = None,
        poll_share: Callable[[Any], float | None] | None = None,
    ) -> None:
        self.load = load
        self.poll = poll
        self.poll_challenger = poll_challenger
        self.close = close
        self.poll_share = poll_share
        self.refused = 0

    @classmethod
    def fixed(cls, predictor: Any, challenger: Any | None = None) -> ModelSource:
        """A source that always serves ``predictor`` (and ``challenger`` as @challenger)."""
        poll_challenger = None
        if challenger is not None:

            def poll_challenger(current: Any | None) -> Any | None:
                return challenger if current is None else None

        return cls(lambda: predictor, None, poll_challenger)


@dataclass(frozen=True)
class Arms:
    """The predictors answering now: replaced as a whole, never changed in place."""

    champion: Any = None
    challenger: Any = None
    #: The canary share recorded on the challenger; ``None``: the server's ``--canary``.
    share: float | None = None

    @property
    def split(self) -> bool:
        """Two different versions to split traffic between."""
        c, ch = self.champion, self.challenger
        return c is not None and ch is not None and str(ch.version) != str(c.version)


class WorkerMarks:
    """Which workers of one server have their model: a file per worker pid in a shared dir."""

    def __init__(self, shared_dir: str | None) -> None:
        self.shared_dir = shared_dir
        self._file = (
            os.path.join(shared_dir, f"{READY_PREFIX}{os.getpid()}") if shared_dir else None
        )

    def mark(self, loaded: bool) -> None:
        """Claim (or give up) this worker's readiness."""
        if self._file is None:
            return
        try:
            if loaded:
                with open(self._file, "w"):
                    pass
            else:
                os.unlink(self._file)
        except OSError:
            pass

    def count(self) -> int:
        """Live workers with a mark (a worker that died keeps no claim)."""
        if self.shared_dir is None:
            return 0
        n = 0
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.shared_dir):
                if entry.name.startswith(READY_PREFIX) and _alive(entry.name[len(READY_PREFIX) :]):
                    n += 1
        return n


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


class ModelHolder:
    """The champion (and challenger) of one worker, loaded and reloaded on threads."""

    def __init__(
        self, source: ModelSource, options: ServeOptions, marks: WorkerMarks | None = None
    ) -> None:
        self.source = source
        self.options = options
        self.marks = marks or WorkerMarks(None)
        self.arms = Arms()
        #: The latest challenger that was loaded, kept after its alias goes so requests
        #: already routed to it still get an answer from it.
        self.last_challenger: Any = None
        self.load_error: str | None = None
        self.reloads = 0
        self.reload_failures = 0
        self.wants_challenger = bool(options.shadow or options.canary)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def champion(self) -> Any:
        """The predictor answering by default (``None`` until loaded)."""
        return self.arms.champion

    @property
    def challenger(self) -> Any:
        """The ``@challenger`` predictor (shadow or canary), ``None`` when there is none."""
        return self.arms.challenger

    @property
    def stopped(self) -> threading.Event:
        """Set once :meth:`stop` was called."""
        return self._stop

    def start(self) -> None:
        """Load in the background, then follow the registry every ``reload_interval``."""
        self.spawn(self._run, "model-load")

    def spawn(self, target: Callable[[], None], name: str) -> None:
        """Run ``target`` on a daemon thread joined by :meth:`close`."""
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        """Stop loading and polling; give up this worker's readiness mark."""
        self._stop.set()
        self.marks.mark(False)

    def close(self, timeout: float = 5.0) -> None:
        """Wait briefly for the threads (a reload may still be downloading), then let the
        source delete its downloaded copies."""
        if self.source.close is None:
            return
        for t in self._threads:
            t.join(timeout)
        self.source.close()

    # ------------------------------------------------------------------ loading

    @property
    def _interval(self) -> float:
        return float(self.options.reload_interval or 0)

    def _run(self) -> None:
        # A server that follows an alias may start before the first promotion (compose,
        # Kubernetes) or while the registry is away: keep trying, /ready says why meanwhile.
        if not retry(
            self._load_first, first_delay=self._interval, max_delay=MAX_BACKOFF, stop=self._stop
        ):
            return
        if self._interval and (self.source.poll or self._polls_challenger):
            while not self._stop.wait(self._interval):
                self.poll_once()

    @property
    def _polls_challenger(self) -> bool:
        return self.wants_challenger and self.source.poll_challenger is not None

    def _load_first(self) -> bool:
        try:
            champion = self.source.load()
        except Exception as exc:
            if self.load_error is None:
                logger.exception("model load failed")
            else:
                logger.warning("model load failed again: %s", exc)
            self.load_error = f"{type(exc).__name__}: {exc}"
            return False
        challenger = None
        if self._polls_challenger:
            found = self._poll("challenger", self.source.poll_challenger, None)
            challenger = None if found is GONE else found
            if challenger is None:
                logger.warning("no @challenger yet: it starts once one is registered")
        # Before the first request: this one full collection takes ~200 ms.
        freeze_after_load()
        self._swap(Arms(champion, challenger, self._share(challenger, None)))
        self.load_error = None
        self.marks.mark(True)
        return True

    def _poll(self, role: str, poll: Callable[[Any], Any] | None, current: Any) -> Any:
        if poll is None:
            return None
        try:
            return poll(current)
        except Exception as exc:
            if current is None:
                logger.warning("%s not loadable yet: %s", role, exc)
            else:
                logger.exception(
                    "hot reload of the %s failed; keeping version %s", role, current.version
                )
                self.reload_failures += 1
            return None

    def poll_once(self) -> None:
        """Ask the source once for a moved champion or challenger and swap in what moved."""
        arms = self.arms
        champion = self._poll("champion", self.source.poll, arms.champion)
        challenger = arms.challenger
        if self._polls_challenger:
            found = self._poll("challenger", self.source.poll_challenger, arms.challenger)
            if found is GONE:
                challenger = None
                logger.info("@challenger removed: %s ends", self._mode)
            elif found is not None:
                challenger = found
        # A new challenger starts at the server's share unless one is recorded on it.
        share = self._share(challenger, arms.share if challenger is arms.challenger else None)
        if champion is None and challenger is arms.challenger and share == arms.share:
            return
        new = Arms(champion if champion is not None else arms.champion, challenger, share)
        self._swap(new)
        if new.share != arms.share and challenger is not None:
            logger.info(
                "canary share of version %s now %s (was %s)",
                challenger.version,
                _percent(new.share if new.share is not None else self.options.canary),
                _percent(arms.share if arms.share is not None else self.options.canary),
            )
        for role, old, now in (
            ("champion", arms.champion, new.champion),
            ("challenger", arms.challenger, new.challenger),
        ):
            if now is not None and now is not old:
                self.reloads += 1
                logger.info(
                    "%s now %s version %s (was %s)",
                    role,
                    now.name,
                    now.version,
                    getattr(old, "version", None),
                )
        freeze_after_load()

    def _share(self, challenger: Any, current: float | None) -> float | None:
        """The share recorded on ``challenger`` (``current`` when the registry is away)."""
        poll = self.source.poll_share
        if not self.options.canary or challenger is None or poll is None:
            return None
        try:
            return poll(challenger)
        except Exception as exc:
            logger.warning(
                "cannot read the canary share of version %s: %s", challenger.version, exc
            )
            return current

    @property
    def _mode(self) -> str:
        return "the canary" if self.options.canary else "shadow scoring"

    def _swap(self, arms: Arms) -> None:
        if arms.challenger is not None:
            self.last_challenger = arms.challenger
        # One reference assignment: a request reads both arms from the same value.
        self.arms = arms


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.2%}".replace(".00%", "%")
