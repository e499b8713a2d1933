"""Promote."""
from __future__ import annotations
from typing import Any
from mlcycle.register.types import GatePolicy, PromotionResult

def promote(client: Any, name: str, version: str | None = None, *, policy: GatePolicy = GatePolicy(), force: bool = False, reason: str | None = None, eval_data: Any = None) -> PromotionResult:
    raise NotImplementedError

def rollback(client: Any, name: str, reason: str) -> PromotionResult:
    raise NotImplementedError
