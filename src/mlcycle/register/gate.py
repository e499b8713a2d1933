"""Gate."""
from __future__ import annotations
from typing import Any
from mlcycle.register.types import GateDecision, GatePolicy

def gate(client: Any, name: str, version: str | None = None, policy: GatePolicy = GatePolicy(), eval_data: Any = None) -> GateDecision:
    raise NotImplementedError
