"""The lifecycle demo on the embedded default store.

API: :func:`fresh_store` — empty the demo's directory and put its stores in it;
:func:`run_demo` — a generator of progress lines; each stage adds itself.

- :mod:`mlcycle.demo.run`: the stores, and the loop train → register → serve → traffic →
  monitor → retrain → hot reload;
- :mod:`mlcycle.demo.server`: the ``mlcycle serve`` process and the HTTP traffic it answers.
"""

from mlcycle.demo.run import MARKER, fresh_store, run_demo

__all__ = ["MARKER", "fresh_store", "run_demo"]
