"""The records the incident stage passes around: signals in, incidents out.

A *signal* is one piece of evidence that something is wrong: an anomaly from detection, a prediction of a
breach, or an alert from Alertmanager. Signals are deduplicated by ``fingerprint`` (the same series'
anomaly, the same alert, the same prediction) and grouped into *incidents*.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SIGNAL_KINDS = ("anomaly", "prediction", "alert")
SEVERITIES = ("info", "warning", "critical")
STATUSES = ("open", "mitigated", "resolved")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass(frozen=True)
class Signal:
    kind: str  # anomaly | prediction | alert
    fingerprint: str  # same fingerprint = same underlying problem (deduplicated)
    time: float  # event time, unix seconds
    service: str | None
    metric: str | None
    score: float  # 0..1, how sure the source is
    severity: str  # info | warning | critical
    summary: str  # one line a person can read
    labels: dict[str, str] = field(default_factory=dict)
    resolved: bool = False  # an alert that stopped firing, a prediction withdrawn
    data: dict[str, Any] = field(default_factory=dict)  # the source record's evidence


@dataclass
class SignalState:
    """A deduplicated signal inside an incident: first and last occurrence, count, strongest score."""

    kind: str
    fingerprint: str
    service: str | None
    metric: str | None
    first_time: float
    last_time: float
    count: int
    score: float
    severity: str
    summary: str
    labels: dict[str, str] = field(default_factory=dict)
    resolved: bool = False

    @classmethod
    def of(cls, s: Signal) -> SignalState:
        return cls(s.kind, s.fingerprint, s.service, s.metric, s.time, s.time, 1, s.score, s.severity, s.summary,
                   dict(s.labels), s.resolved)

    def merge(self, s: Signal) -> None:
        self.first_time = min(self.first_time, s.time)
        self.last_time = max(self.last_time, s.time)
        self.count += 1
        if s.score > self.score:
            self.score = s.score
            self.summary = s.summary
        if SEVERITY_RANK[s.severity] > SEVERITY_RANK[self.severity]:
            self.severity = s.severity
        self.resolved = s.resolved

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "fingerprint": self.fingerprint, "service": self.service, "metric": self.metric,
                "first_time": self.first_time, "last_time": self.last_time, "count": self.count,
                "score": self.score, "severity": self.severity, "summary": self.summary, "labels": self.labels,
                "resolved": self.resolved}


@dataclass
class TimelineEntry:
    time: float  # event time
    kind: str  # opened | signal | updated | root_cause | severity | mitigated | reopened | resolved | ack | note
    text: str
    actor: str = "aurora"
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"time": self.time, "kind": self.kind, "text": self.text, "actor": self.actor, "data": self.data}
