"""What every executor takes and gives back, the template filling and the HMAC signature."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any, Protocol

OUTPUT_LIMIT = 4000


@dataclass(frozen=True)
class ExecRequest:
    action_id: int
    incident_id: int
    playbook: str
    action: str
    target: str
    params: dict[str, Any]
    timeout_s: float
    time: float  # event time of the decision


@dataclass
class ExecResult:
    ok: bool
    output: str
    detail: dict[str, Any] = field(default_factory=dict)


class Executor(Protocol):
    name: str

    def run(self, req: ExecRequest) -> ExecResult: ...


def render(template: str, values: dict[str, str]) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"cannot fill {template!r}: {exc}; known fields: {', '.join(sorted(values))}") from exc


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
