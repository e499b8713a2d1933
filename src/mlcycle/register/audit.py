"""Audit."""
from __future__ import annotations
from typing import Any
from mlcycle.register.types import AuditEntry

def history(client: Any, name: str) -> list[AuditEntry]:
    raise NotImplementedError
