"""The simulated fleet's executor (the demo and the benchmarks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aurora.remedy.executors.base import ExecRequest, ExecResult


class SimExecutor:
    """Acts on the simulated fleet through ``apply(kind, service, event_time)``."""

    name = "sim"

    def __init__(self, apply: Callable[[str, str, float], Any]) -> None:
        self.apply = apply

    def run(self, req: ExecRequest) -> ExecResult:
        try:
            res = self.apply(req.action, req.target, req.time)
        except Exception as exc:
            return ExecResult(False, f"simulated {req.action} of {req.target} failed: {exc}")
        info = res.as_dict() if hasattr(res, "as_dict") else {"result": str(res)}
        return ExecResult(True, f"simulated {req.action} of {req.target}: {info.get('note', '')}", info)
